"""The caller's JSON Schemas (tool parameters, response formats), checked with jsonschema, which is
loaded on first use.

Only requests with tools or a response format need it. jsonschema and what it brings (referencing,
rpds, attrs) add ~11 MB to a process; loaded here when first needed, a worker that never sees such a
request never carries them (every worker counts against the memory bound of issue #4). Every
schema is read in its own draft (``$schema``), Draft 2020-12 when it names none.
"""
from __future__ import annotations

from typing import Any, List, Mapping, Optional


class UnresolvableReference(Exception):
    """The schema has a "#/..." reference to nothing: it cannot be evaluated against any value."""


def schema_problem(schema: Mapping) -> Optional[str]:
    """Why ``schema`` is not a valid schema of its draft, or None. (A schema nested deeper than the
    interpreter's stack raises RecursionError: the caller says so in its own words.)"""
    from jsonschema.exceptions import SchemaError

    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as exc:
        return exc.message
    return None


def validator(schema: Mapping) -> Any:
    """A validator for ``schema`` (build it once per schema: it compiles nothing, but caches refs)."""
    return _validator_class(schema)(schema)


def errors(checker: Any, value: Any) -> List[Any]:
    """Every way ``value`` fails ``checker``'s schema ([] when it fits). UnresolvableReference for a
    schema that cannot be evaluated; RecursionError for a value nested too deep."""
    from referencing.exceptions import Unresolvable

    try:
        return list(checker.iter_errors(value))
    except Unresolvable as exc:
        raise UnresolvableReference(str(exc)) from exc


def most_relevant(found: List[Any]) -> Any:
    """The error a person should read first (jsonschema's own ranking), or None."""
    from jsonschema.exceptions import best_match

    return best_match(found)


def _validator_class(schema: Mapping) -> Any:
    from jsonschema.validators import Draft202012Validator, validator_for

    return validator_for(schema, default=Draft202012Validator)
