"""Responses ``tools`` / ``tool_choice`` / ``parallel_tool_calls`` -> the ToolSet of tool_calls/.

The Responses API spells function tools flat (``{"type": "function", "name", "description",
"parameters", "strict"}``) where chat nests them under ``function``; each function is checked by
tool_calls/toolset.py's own ``parse_function`` and the choice by its ``parse_tool_choice`` (which
reads the flat ``{"type": "function", "name"}`` too).

The other tool types, decided one by one:
- ``custom`` (GPT-5 freeform tools, e.g. Codex's apply_patch) ride the same text protocol as a
  function taking one string, ``{"input": "..."}``; the call comes back as a ``custom_tool_call``
  item whose ``input`` is that string (builder.py), and ``custom_tool_call`` /
  ``custom_tool_call_output`` input items go back upstream as calls and results (items.py). A
  grammar ``format`` cannot be enforced on a web model: its definition is shown in the description.
- tools ChatGPT's web model has natively (NATIVE_TOOLS: web search, image generation, the code
  interpreter) are accepted, echoed, and left to the web model: it browses or runs code by itself
  when it decides to, and what it finds comes back as its text. No ``web_search_call`` items are
  produced (the web backend does not report them in a form we could map faithfully).
- anything else (``file_search``, ``computer_use_preview``, ``mcp``, ``local_shell``, ``shell``,
  ...) is a 400 naming the type: honouring it needs a service we do not have, and dropping it
  silently would leave the client waiting for calls that never come.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Mapping, Optional, Tuple

from ..errors import bad_request
from ..tool_calls.toolset import Tool, ToolSet, parse_function, parse_tool_choice

NATIVE_TOOLS = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26",
                          "web_search_preview_2025_03_11", "image_generation", "code_interpreter"})
CUSTOM_INPUT = {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"],
                "additionalProperties": False}
# A hosted tool_choice ({"type": "web_search_preview"}) asks for a tool the web model runs itself.
HOSTED_CHOICES = NATIVE_TOOLS


@dataclass(frozen=True)
class ResponsesTools:
    toolset: Optional[ToolSet]          # what goes through the text protocol (None: nothing)
    custom: FrozenSet[str] = frozenset()  # names of the custom (freeform) tools among them
    echo: Tuple[Dict[str, Any], ...] = ()  # the tools as the Response repeats them
    choice_echo: Any = "auto"
    native: Tuple[str, ...] = ()  # native tool types left to the web model (echoed only)


def parse_tools(body: Mapping) -> ResponsesTools:
    value = body.get("tools")
    if value is not None and not isinstance(value, list):
        raise bad_request("'tools' must be an array of tool objects.", param="tools")
    entries = [_entry(item, f"tools[{index}]") for index, item in enumerate(value or [])]
    tools = tuple(tool for tool, _, _ in entries if tool is not None)
    _no_duplicates(tools)
    native = tuple(kind for tool, kind, _ in entries if tool is None)
    value = body.get("tool_choice")
    tools = _allowed(value, tools)
    choice, forced = _choice(value, tools, native)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad_request("'parallel_tool_calls' must be a boolean.", param="parallel_tool_calls")
    toolset = ToolSet(tools=tools, choice=choice, forced=forced, parallel=parallel is not False) if tools else None
    custom = frozenset(tool.name for tool, kind, _ in entries if kind == "custom")
    choice_echo = _choice_echo(value, toolset, custom)
    return ResponsesTools(toolset, custom, tuple(echo for _, _, echo in entries), choice_echo, native)


def _entry(item: Any, param: str) -> Tuple[Optional[Tool], str, Dict[str, Any]]:
    """(the protocol's Tool or None for a native tool, the type, the echo)."""
    if not isinstance(item, Mapping):
        raise bad_request(f"{param} must be an object.", param=param)
    kind = item.get("type")
    if kind == "function":
        tool = parse_function(item, param)
        return tool, kind, {"type": "function", "name": tool.name, "description": tool.description or None,
                            "parameters": tool.parameters, "strict": bool(item.get("strict", False))}
    if kind == "custom":
        return _custom(item, param)
    if _one_of(kind, NATIVE_TOOLS):
        return None, kind, dict(item)
    raise bad_request(f"{param}.type {kind!r} is not supported: only function and custom tools can be offered "
                      "to the web model through the tool protocol, and of the built-in tools only those the "
                      f"web model has itself ({', '.join(sorted(NATIVE_TOOLS))}).", param=f"{param}.type")


def _custom(item: Mapping, param: str) -> Tuple[Tool, str, Dict[str, Any]]:
    name, description = item.get("name"), item.get("description")
    if not isinstance(name, str) or not name:
        raise bad_request(f"{param}.name must be a non-empty string.", param=f"{param}.name")
    if description is not None and not isinstance(description, str):
        raise bad_request(f"{param}.description must be a string.", param=f"{param}.description")
    fmt = item.get("format")
    if fmt is not None and not isinstance(fmt, Mapping):
        raise bad_request(f"{param}.format must be an object.", param=f"{param}.format")
    text = (description or "") + _format_note(fmt)
    tool = Tool(name=name, description=text.strip(), parameters=CUSTOM_INPUT)
    echo = {"type": "custom", "name": name, "description": description, "format": dict(fmt or {"type": "text"})}
    return tool, "custom", echo


def _format_note(fmt: Optional[Mapping]) -> str:
    """A freeform tool's input is one string; a grammar is told to the model (it cannot be enforced)."""
    # Said plainly: a web model tends to pass a freeform input as the bare arguments string, which
    # the protocol's parser cannot tell from a broken call (it then comes out as text).
    note = (' Freeform tool: its arguments are always {"input": "<the whole input as one JSON string>"}.')
    if fmt and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        note += f" The input must follow this {fmt.get('syntax', 'grammar')} grammar:\n{fmt['definition']}"
    return note


def _no_duplicates(tools: Tuple[Tool, ...]) -> None:
    names = [tool.name for tool in tools]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise bad_request(f"The tool name {duplicate!r} appears more than once in 'tools'.", param="tools")


def _allowed(value: Any, tools: Tuple[Tool, ...]) -> Tuple[Tool, ...]:
    """``{"type": "allowed_tools", "mode", "tools": [...]}`` narrows what may be called: only those
    function / custom tools are offered to the model (a native tool listed there stays the web
    model's own business)."""
    if not isinstance(value, Mapping) or value.get("type") != "allowed_tools":
        return tools
    listed = value.get("tools")
    if value.get("mode") not in ("auto", "required") or not isinstance(listed, list) \
            or not all(isinstance(tool, Mapping) for tool in listed):
        raise bad_request("'tool_choice' of type allowed_tools needs 'mode' ('auto' or 'required') and 'tools' "
                          "(an array of tool objects).", param="tool_choice")
    names = {tool.get("name") for tool in listed
             if tool.get("type") in ("function", "custom") and isinstance(tool.get("name"), str)}
    unknown = sorted(str(name) for name in names - {tool.name for tool in tools})
    if unknown:
        raise bad_request(f"'tool_choice.tools' names {', '.join(unknown)}, not among the tools.",
                          param="tool_choice.tools")
    return tuple(tool for tool in tools if tool.name in names)


def _choice(value: Any, tools: Tuple[Tool, ...], native: Tuple[str, ...]) -> Tuple[str, Optional[str]]:
    if isinstance(value, Mapping) and _one_of(value.get("type"), HOSTED_CHOICES):
        return "auto", None  # the web model decides itself whether it searches or runs code
    if isinstance(value, Mapping) and value.get("type") == "allowed_tools":
        value = value["mode"]
    if isinstance(value, Mapping) and value.get("type") == "custom":
        value = {"type": "function", "name": value.get("name")}
    if value == "required" and not tools and native:
        return "auto", None  # only the web model's own tools: it must use one, which it decides itself
    return parse_tool_choice(value, tools)


def _choice_echo(value: Any, toolset: Optional[ToolSet], custom: FrozenSet[str]) -> Any:
    if isinstance(value, Mapping) and _one_of(value.get("type"), HOSTED_CHOICES | {"allowed_tools"}):
        return dict(value)
    if value == "required":
        return value
    if toolset is None:
        return value if value in ("auto", "none") else "auto"
    if toolset.choice == "function":
        kind = "custom" if toolset.forced in custom else "function"
        return {"type": kind, "name": toolset.forced}
    return toolset.choice


def _one_of(value: Any, names: FrozenSet[str]) -> bool:
    return isinstance(value, str) and value in names  # a list or object sent as a type is no name


def custom_input(arguments: str) -> str:
    """A custom tool call's input from its protocol arguments (the parser validated them against
    CUSTOM_INPUT, so they are {"input": "..."}; anything else is passed on whole, never lost)."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return value["input"]
    return arguments


def custom_arguments(text: str) -> str:
    """The protocol arguments of a custom tool call sent back by the client (its ``input``)."""
    return json.dumps({"input": text}, ensure_ascii=False)
