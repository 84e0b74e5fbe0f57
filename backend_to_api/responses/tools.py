"""Responses ``tools`` / ``tool_choice`` / ``parallel_tool_calls`` -> the ToolSet of tool_calls/.

The Responses API spells function tools flat (``{"type": "function", "name", "description",
"parameters", "strict"}``) where chat nests them under ``function``; each function is checked by
tool_calls/toolset.py's own ``parse_function`` and the choice by its ``parse_tool_choice`` (which
reads the flat ``{"type": "function", "name"}`` too). Built-in tools (web_search, file_search,
code_interpreter, ...) cannot be honoured through a web model's text protocol: a 400 naming the
tool, never silently dropped.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import bad_request
from ..tool_calls.toolset import Tool, ToolSet, parse_function, parse_tool_choice


def parse_tools(body: Mapping) -> Optional[ToolSet]:
    """None when the request offers no tools."""
    tools = _tools(body.get("tools"))
    choice, forced = parse_tool_choice(body.get("tool_choice"), tools)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad_request("'parallel_tool_calls' must be a boolean.", param="parallel_tool_calls")
    if not tools:
        return None
    return ToolSet(tools=tools, choice=choice, forced=forced, parallel=parallel is not False)


def echo_tools(toolset: Optional[ToolSet]) -> List[Dict[str, Any]]:
    """The tools as a Response repeats them (FunctionTool)."""
    if toolset is None:
        return []
    return [{"type": "function", "name": tool.name, "description": tool.description or None,
             "parameters": tool.parameters, "strict": False} for tool in toolset.tools]


def echo_tool_choice(toolset: Optional[ToolSet]) -> Any:
    if toolset is None:
        return "auto"
    if toolset.choice == "function":
        return {"type": "function", "name": toolset.forced}
    return toolset.choice


def _tools(value: Any) -> Tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise bad_request("'tools' must be an array of tool objects.", param="tools")
    tools = tuple(_tool(item, f"tools[{index}]") for index, item in enumerate(value))
    names = [tool.name for tool in tools]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise bad_request(f"The function name {duplicate!r} appears more than once in 'tools'.", param="tools")
    return tools


def _tool(item: Any, param: str) -> Tool:
    if not isinstance(item, Mapping):
        raise bad_request(f"{param} must be an object.", param=param)
    kind = item.get("type")
    if kind != "function":
        raise bad_request(f"{param}.type {kind!r} is not supported: only function tools can be offered to "
                          "the web model (built-in tools such as web_search are not available here).",
                          param=f"{param}.type")
    return parse_function(item, param)
