"""The tools a chat request offers, and the calls a reply makes; ``parse_chat_tools`` validates the
chat body's ``tools``, ``tool_choice`` and ``parallel_tool_calls`` (every bad shape is a 400 naming
its param, as OpenAI's are).

Only ``function`` tools exist here: OpenAI's other tool types (``custom``, and the Responses API's
built-ins such as ``web_search``) would need the model to do something we cannot check or run, so
they are refused with a 400 rather than ignored (ignored, the model would answer without a tool
the caller relies on).
"""
from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional, Tuple


from ..errors import bad_request
from ..json_schema import schema_problem

CHOICES = ("auto", "required", "none")
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # OpenAI's rule for function names
EMPTY_PARAMETERS = {"type": "object", "properties": {}}
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict  # JSON Schema; EMPTY_PARAMETERS when the client gave none


@dataclass(frozen=True)
class ToolSet:
    tools: Tuple[Tool, ...]
    choice: str  # "auto" | "required" | "none" | "function"
    forced: Optional[str] = None  # the function's name when choice == "function"
    parallel: bool = True
    legacy: bool = False  # offered as the deprecated ``functions``: calls answer as ``function_call``

    def get(self, name: str) -> Optional[Tool]:
        return next((tool for tool in self.tools if tool.name == name), None)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text of an object


def new_call_id() -> str:
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def parse_chat_tools(body: Mapping, flat: bool = False) -> Optional[ToolSet]:
    """The body's tools as a ToolSet; None when it offers none. ``flat``: the Responses API's
    tools (see parse_tools); its tool_choice and parallel_tool_calls are read the same way."""
    if body.get("functions") is not None and not flat:
        return _parse_legacy_functions(body)
    tools = parse_tools(body.get("tools"), flat)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad_request("'parallel_tool_calls' must be a boolean.", param="parallel_tool_calls")
    choice, forced = parse_tool_choice(body.get("tool_choice"), tools)
    if not tools:
        return None
    return ToolSet(tools=tools, choice=choice, forced=forced, parallel=parallel is not False)


def _parse_legacy_functions(body: Mapping) -> Optional[ToolSet]:
    """The deprecated ``functions`` + ``function_call`` (older clients still send them): the same
    tools, one call per reply, answered in the legacy shape (render/chunks.py)."""
    if body.get("tools") is not None:
        raise bad_request("Send either 'tools' or the legacy 'functions', not both.", param="functions")
    functions = body["functions"]
    if not isinstance(functions, list):
        raise bad_request("'functions' must be an array of function definitions.", param="functions")
    tools = tuple(_parse_legacy_function(item, f"functions[{index}]") for index, item in enumerate(functions))
    _check_unique(tools, "functions")
    choice, forced = parse_tool_choice(_legacy_choice(body.get("function_call")), tools, param="function_call")
    if not tools:
        return None
    return ToolSet(tools=tools, choice=choice, forced=forced, parallel=False, legacy=True)


def _parse_legacy_function(item: Any, param: str) -> Tool:
    if not isinstance(item, Mapping):
        raise bad_request(f"{param} must be an object.", param=param)
    return parse_function(item, param)


def _legacy_choice(value: Any) -> Any:
    """``function_call``'s {"name": ...} in tool_choice's shape; "none" and "auto" are the same words."""
    if isinstance(value, Mapping) and "type" not in value:
        return {"type": "function", "function": value}
    return value


def parse_tool_choice(value: Any, tools: Tuple[Tool, ...], param: str = "tool_choice") -> Tuple[str, Optional[str]]:
    """(choice, forced name). Without tools, "auto" and "none" are accepted (some clients always
    send one) and mean nothing; a choice that needs a tool is a 400, as at OpenAI."""
    if value is None:
        return "auto", None
    if isinstance(value, str):
        if value not in CHOICES:
            raise bad_request(f"Invalid value for '{param}': {value!r}. Supported values are 'none', 'auto', "
                              "'required' or a named function.", param=param)
        if value == "required" and not tools:
            raise bad_request(f"'{param}' is 'required' but no tools were given.", param=param)
        return value, None
    name = _forced_name(value, param)
    if all(tool.name != name for tool in tools):
        raise bad_request(f"'{param}' names the function {name!r}, which is not among the tools.", param=param)
    return "function", name


def _forced_name(value: Any, param: str) -> str:
    # Chat's shape is {"type": "function", "function": {"name": ...}}; the Responses API's flat
    # {"type": "function", "name": ...} is read too, so helper code can share this.
    if not isinstance(value, Mapping) or value.get("type") != "function":
        raise bad_request(f"'{param}' must be 'none', 'auto', 'required' or "
                          '{"type": "function", "function": {"name": ...}}.', param=param)
    function = value.get("function")
    name = function.get("name") if isinstance(function, Mapping) else value.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(f"'{param}' must name a function.", param=param)
    return name


def parse_tools(value: Any, flat: bool = False) -> Tuple[Tool, ...]:
    """A ``tools`` array. ``flat``: the Responses API's shape, the function's fields on the item
    itself (``{"type": "function", "name", ...}``) instead of under ``function``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise bad_request("'tools' must be an array of function tools.", param="tools")
    tools = tuple(_parse_tool(item, f"tools[{index}]", flat) for index, item in enumerate(value))
    _check_unique(tools, "tools")
    return tools


def _check_unique(tools: Tuple[Tool, ...], param: str) -> None:
    names = [tool.name for tool in tools]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise bad_request(f"The function name {duplicate!r} appears more than once in '{param}'.", param=param)


def _parse_tool(item: Any, param: str, flat: bool) -> Tool:
    if not isinstance(item, Mapping):
        raise bad_request(f"{param} must be an object.", param=param)
    kind = item.get("type")
    if kind != "function":
        raise bad_request(f"{param}.type {kind!r} is not supported: only 'function' tools can be offered "
                          "to this model.", param=f"{param}.type")
    if flat:
        return parse_function(item, param)
    function = item.get("function")
    if not isinstance(function, Mapping):
        raise bad_request(f"{param}.function must be an object.", param=f"{param}.function")
    return parse_function(function, f"{param}.function")


def parse_function(function: Mapping, param: str) -> Tool:
    """One function definition: ``name``, optional ``description`` and ``parameters`` (JSON Schema)."""
    name = function.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise bad_request(f"{param}.name must be 1 to 64 letters, digits, '_' or '-'; got {name!r}.",
                          param=f"{param}.name")
    description = function.get("description")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise bad_request(f"{param}.description must be a string.", param=f"{param}.description")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise bad_request(f"{param}.strict must be a boolean.", param=f"{param}.strict")
    return Tool(name=name, description=description, parameters=_parse_parameters(function.get("parameters"),
                                                                                    f"{param}.parameters"))


def _parse_parameters(value: Any, param: str) -> dict:
    if value is None:
        return dict(EMPTY_PARAMETERS)
    if not isinstance(value, Mapping):
        raise bad_request(f"{param} must be a JSON Schema object.", param=param)
    schema = dict(value)
    problem = schema_problem(schema)
    if problem is not None:
        raise bad_request(f"{param} is not a valid JSON Schema: {problem}", param=param)
    remote = next(_remote_refs(schema), None)
    if remote is not None:  # it would need a download to check a call, which we never make
        raise bad_request(f"{param} refers to {remote!r}: only references within the schema ('#/...') "
                          "are supported.", param=param)
    return schema


def _remote_refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, Mapping):
        ref = schema.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            yield ref
        for value in schema.values():
            yield from _remote_refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _remote_refs(item)
