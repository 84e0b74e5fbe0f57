"""Structured output: a requested JSON reply format, what the model is told, and the check of its reply.

Chat's ``response_format`` and the Responses API's ``text.format`` both become an ``OutputFormat``.
A web model cannot be constrained while it generates (OpenAI's strict mode samples from the
schema's grammar; we can only ask), so the reply is checked afterwards: ``check`` takes off fences
and prose around one JSON object and validates it against the schema (jsonschema, the schema's own
``$schema`` draft, Draft 2020-12 by default). The caller retries once with ``correction``
(structured_reply.py) and then gives up with a clear error.

``strict`` is kept as the client said it; the reply is validated against the schema either way:
a client that sent a schema wants a reply that fits it, and we have no cheaper guarantee to offer.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional


from . import json_schema
from .errors import bad_request
from .json_in_text import NoJson, find_json
from .tool_calls.repair import coerced

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for json_schema.name
MAX_REASON_CHARS = 400  # a reason goes into the retry's prompt and the error message: keep it short
KINDS = ("text", "json_object", "json_schema")


class FormatMismatch(Exception):
    """The reply is not what the format asks for; ``reason`` says why, in words for the model."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OutputFormat:
    kind: str  # "json_object" | "json_schema"
    name: str = "response"
    schema: Optional[dict] = None
    strict: bool = False

    def instruction(self) -> str:
        """The upstream system message's text that asks for this format."""
        lines = [
            "# Response format",
            "",
            "Answer with one JSON object and nothing else: no prose before or after it, no Markdown code fences.",
        ]
        if self.kind == "json_schema" and self.schema is not None:
            lines += [
                f"The JSON object must be valid against this JSON Schema (named {self.name}):",
                "<json_schema>",
                json.dumps(self.schema, ensure_ascii=False),
                "</json_schema>",
            ]
        return "\n".join(lines)

    def check(self, text: str) -> str:
        """The JSON text to give the client (fences and prose around one JSON value taken off).
        Raises FormatMismatch when there is no such value or it does not fit; a schema whose
        ``$ref`` cannot be resolved is the client's error (400), not the model's."""
        try:
            json_text, value = find_json(text)
        except NoJson as exc:
            raise FormatMismatch(exc.reason) from None
        if self.schema is None:
            if not isinstance(value, dict):
                raise FormatMismatch(f"it is a JSON {_json_type(value)}, not an object")
            return json_text
        problem = _schema_problem(self.schema, value)
        if problem is None:
            return json_text
        repaired = _repaired(self.schema, value)
        if repaired is None:
            raise FormatMismatch(_shorten(f"it does not match the JSON Schema: {problem}"))
        return repaired

    def correction(self, reason: str) -> str:
        """The user message of the retry, after the bad reply."""
        return f"Your previous reply was not valid: {reason.rstrip('.')}.\n\nAnswer again with the JSON object only."


def parse_response_format(value: Any, param: str = "response_format") -> Optional[OutputFormat]:
    """Chat's ``response_format``: ``{"type": "json_schema", "json_schema": {"name", "schema",
    "strict"}}``, ``{"type": "json_object"}``; ``{"type": "text"}`` or none: None."""
    kind = _kind(value, param)
    if kind is None:
        return None
    if kind == "json_object":
        return OutputFormat("json_object")
    return _json_schema(value.get("json_schema"), f"{param}.json_schema")


def parse_text_format(value: Any, param: str = "text.format") -> Optional[OutputFormat]:
    """The Responses API's ``text.format``: the same, flat (``{"type": "json_schema", "name",
    "schema", "strict"}``)."""
    kind = _kind(value, param)
    if kind is None:
        return None
    if kind == "json_object":
        return OutputFormat("json_object")
    return _json_schema(value, param)


def _kind(value: Any, param: str) -> Optional[str]:
    """The format's type; None for plain text (or no format at all)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise bad_request(f"'{param}' must be an object.", param=param)
    kind = value.get("type")
    if kind not in KINDS:
        raise bad_request(f"{param}.type must be one of {', '.join(KINDS)}; got {kind!r}.", param=f"{param}.type")
    return None if kind == "text" else kind


def _json_schema(spec: Any, param: str) -> OutputFormat:
    if not isinstance(spec, Mapping):
        raise bad_request(f"'{param}' must be an object with name and schema.", param=param)
    # OpenAI requires the name; clients that leave it out still mean their schema, so it defaults.
    name = spec.get("name", "response")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise bad_request(f"{param}.name must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -.", param=f"{param}.name")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise bad_request(f"{param}.strict must be a boolean.", param=f"{param}.strict")
    schema = spec.get("schema")
    if schema is not None:
        _check_schema(schema, f"{param}.schema")
    return OutputFormat("json_schema", name=name, schema=dict(schema) if schema is not None else None,
                        strict=bool(strict))


def _check_schema(schema: Any, param: str) -> None:
    if not isinstance(schema, Mapping):
        raise bad_request(f"{param} must be a JSON Schema object.", param=param)
    if not isinstance(schema.get("$schema", ""), str):  # jsonschema would look it up as a key: TypeError
        raise bad_request(f"{param}.$schema must be a string (a JSON Schema dialect URI).", param=f"{param}.$schema")
    try:
        problem = json_schema.schema_problem(schema)
    except RecursionError:
        raise bad_request(f"{param} is nested too deeply.", param=param) from None
    if problem is not None:
        raise bad_request(_shorten(f"{param} is not a valid JSON Schema: {problem}"), param=param)


def _schema_problem(schema: dict, value: Any) -> Optional[str]:
    """Why ``value`` does not fit ``schema`` (the most relevant error, with where), or None."""
    try:
        error = json_schema.most_relevant(json_schema.errors(json_schema.validator(schema), value))
    except json_schema.UnresolvableReference as exc:
        raise bad_request(_shorten(f"The response format's JSON Schema has a $ref that cannot be resolved: {exc}"),
                          param="response_format") from None
    except RecursionError:
        return "it is nested too deeply"
    if error is None:
        return None
    return f"at {error.json_path}: {error.message}"


def _repaired(schema: dict, value: Any) -> Optional[str]:
    """The answer with a top-level number or boolean that came as a string converted ("3" for an
    integer, "true" for a boolean) or a null optional property left out, as a tool call's arguments
    are mended (tool_calls/repair.py), when that makes it valid; None otherwise. Saves a whole
    retry turn for a reply whose meaning is not in doubt. A property the schema forbids is not
    dropped here, unlike in a call: it may be the answer put under the wrong key (the retry asks)."""
    if not isinstance(value, dict):
        return None
    checker = json_schema.validator(schema)
    try:
        found = json_schema.errors(checker, value)
        if any(error.validator == "additionalProperties" for error in found):
            return None
        fixed = coerced(value, found, schema.get("required") or ())
        if fixed is None or json_schema.errors(checker, fixed):
            return None
    except (json_schema.UnresolvableReference, RecursionError):
        return None
    return json.dumps(fixed, ensure_ascii=False)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS - 3] + "..."
