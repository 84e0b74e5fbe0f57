"""One ``<tool_call>`` block's text -> tool calls, validated against the tools' schemas, or None
when it cannot be read as a call whose intent is clear (the caller then shows the block as text).

A web model follows the protocol well but not perfectly. These slips are repaired, because what it
meant is unambiguous:

- the JSON wrapped in a Markdown code fence inside the block;
- trailing commas, and up to three closing braces missing at the end (a reply cut short);
- several calls in one block: a JSON array of calls, or several objects one after the other;
- OpenAI's own shapes: ``{"type": "function", "function": {"name", "arguments"}}``, arguments as a
  JSON *string*, or under ``parameters`` / ``args`` / ``input``; no arguments at all when the tool
  requires none; bare text as the arguments of a tool whose one required property is a string
  (a freeform tool's input);
- the name with a ``functions.`` prefix, surrounding spaces, or in another letter case when exactly
  one tool matches;
- arguments that fail the schema only because a number or boolean came as a string (``"3"``,
  ``"true"``), an optional property is null, or a property the schema forbids
  (``additionalProperties: false``) was added: converted or dropped, then validated again.

Anything else (an unknown tool, arguments that stay invalid) is not guessed at.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterator, List, Mapping, Optional


from .. import json_schema
from .toolset import Tool, ToolCall, ToolSet, new_call_id

FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
TRAILING_COMMA = re.compile(r",(\s*[}\]])")
ARGUMENT_KEYS = ("arguments", "parameters", "args", "input")
_MISSING = object()
MAX_MISSING_BRACES = 3


class CallReader:
    """Reads call blocks for one ToolSet (schema validators built once per tool)."""

    def __init__(self, toolset: ToolSet) -> None:
        self._toolset = toolset
        self._validators: Dict[str, Any] = {}

    def read(self, body: str) -> Optional[List[ToolCall]]:
        """The calls in one block's body, or None when any of them is not clearly a valid call."""
        values = decode_values(body)
        if not values:
            return None
        calls = []
        for value in _flatten(values):
            call = self._call(value)
            if call is None:
                return None
            calls.append(call)
        return calls or None

    def _call(self, value: Any) -> Optional[ToolCall]:
        if not isinstance(value, Mapping):
            return None
        if isinstance(value.get("function"), Mapping):  # OpenAI's tool_calls item
            value = value["function"]
        tool = self._tool(value.get("name"))
        if tool is None:
            return None
        arguments = _arguments(value)
        if arguments is _MISSING:
            arguments = {} if not tool.parameters.get("required") else None
        if isinstance(arguments, str):
            arguments = _as_only_string(tool, arguments)
        if not isinstance(arguments, dict):
            return None
        arguments = self._valid(tool, arguments)
        if arguments is None:
            return None
        return ToolCall(id=new_call_id(), name=tool.name,
                        arguments=json.dumps(arguments, ensure_ascii=False, separators=(",", ":")))

    def _tool(self, name: Any) -> Optional[Tool]:
        if not isinstance(name, str):
            return None
        name = name.strip()
        if name.startswith("functions."):
            name = name[len("functions."):]
        exact = self._toolset.get(name)
        if exact is not None:
            return exact
        folded = [tool for tool in self._toolset.tools if tool.name.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None

    def _valid(self, tool: Tool, arguments: dict) -> Optional[dict]:
        """The arguments, repaired if need be, when they satisfy the schema; else None. A schema
        that cannot be evaluated (a "#/..." reference to nothing; remote ones are refused as the
        request comes) or arguments nested too deep for it count as not satisfied."""
        checker = self._validator(tool)
        try:
            found = json_schema.errors(checker, arguments)
            if not found:
                return arguments
            fixed = coerced(arguments, found, tool.parameters.get("required") or ())
            if fixed is None or json_schema.errors(checker, fixed):
                return None
        except (json_schema.UnresolvableReference, RecursionError):
            return None
        return fixed

    def _validator(self, tool: Tool) -> Any:
        checker = self._validators.get(tool.name)
        if checker is None:
            checker = self._validators[tool.name] = json_schema.validator(tool.parameters)
        return checker


def decode_values(body: str) -> List[Any]:
    """The JSON values in a block body (empty when it is not JSON, even after the repairs)."""
    text = body.strip()
    fenced = FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        return []
    for candidate in _candidates(text):
        values = _values(candidate)
        if values:
            return values
    return []


def _candidates(text: str) -> Iterator[str]:
    yield text
    text = TRAILING_COMMA.sub(r"\1", text)
    yield text
    for missing in range(1, MAX_MISSING_BRACES + 1):
        yield text + "}" * missing


def _values(text: str) -> List[Any]:
    """Every JSON value in ``text``, back to back (whitespace between); [] when anything else is there."""
    decoder = json.JSONDecoder()
    values, position = [], 0
    while position < len(text):
        try:
            value, position = decoder.raw_decode(text, position)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
            return []
        values.append(value)
        while position < len(text) and text[position].isspace():
            position += 1
    return values


def _flatten(values: List[Any]) -> Iterator[Any]:
    for value in values:
        if isinstance(value, list):
            yield from value
        else:
            yield value


def _arguments(value: Mapping) -> Any:
    for key in ARGUMENT_KEYS:
        if key in value:
            arguments = value[key]
            if isinstance(arguments, str):  # OpenAI's wire form: the object as JSON text
                try:
                    return json.loads(arguments) if arguments.strip() else {}
                except (ValueError, RecursionError):
                    return arguments  # raw text: only a tool taking one string can use it
            return arguments
    return _MISSING


def _as_only_string(tool: Tool, text: str) -> Optional[dict]:
    """Arguments given as bare text, for a tool whose only (required) property is a string:
    freeform tools (a custom tool's ``{"input": ...}``: the model tends to write the patch itself
    as the arguments). Any other tool gets None: which property was meant is not clear; so does
    text that looks like a broken JSON object (that is the arguments cut or mangled, not the input)."""
    properties = tool.parameters.get("properties")
    if text.lstrip().startswith("{") or not isinstance(properties, Mapping) or len(properties) != 1:
        return None
    [(name, schema)] = properties.items()
    required = list(tool.parameters.get("required") or ())
    if not isinstance(schema, Mapping) or schema.get("type") != "string" or required != [name]:
        return None
    return {name: text}


def coerced(arguments: dict, errors: List[Any], required: Any) -> Optional[dict]:
    """``arguments`` with the repairable errors of its top-level properties fixed; None when an
    error is of another kind (also used for a structured-output answer: structured_output.py)."""
    fixed = dict(arguments)
    by_key: Dict[str, List[Any]] = {}
    for error in errors:
        path = list(error.absolute_path)
        if not path and error.validator == "additionalProperties":
            allowed = set(error.schema.get("properties", {}))
            fixed = {key: value for key, value in fixed.items() if key in allowed}
        elif path and path[0] in fixed:
            by_key.setdefault(path[0], []).append(error)
        else:
            return None
    for key, key_errors in by_key.items():
        if key not in fixed:  # an extra property, already dropped
            continue
        if fixed[key] is None and key not in required:
            del fixed[key]
            continue
        wanted = [e.validator_value for e in key_errors if e.validator == "type" and len(e.absolute_path) == 1]
        value = _converted(fixed[key], wanted[0]) if len(wanted) == len(key_errors) == 1 else None
        if value is None:
            return None
        fixed[key] = value
    return fixed


def _converted(value: Any, wanted: Any) -> Any:
    """A string ``value`` as the JSON type the schema wanted, when that reading is unambiguous;
    None when there is no such reading."""
    types = [wanted] if isinstance(wanted, str) else list(wanted)
    if not isinstance(value, str):
        return None
    text = value.strip()
    for kind in types:
        if kind == "integer" and re.fullmatch(r"-?\d+", text):
            return int(text)
        if kind == "number" and re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text):
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "boolean" and text.lower() in ("true", "false"):
            return text.lower() == "true"
    return None
