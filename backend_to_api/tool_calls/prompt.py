"""What the web model reads about tools: the protocol text (the tools and how to call them) and the
tool traffic of the history, in the same ``<tool_call>`` / ``<tool_response>`` blocks.

The web backend keeps no state for us, so every turn carries the whole history: the model must see
which calls it made and what came back, in the form it was taught to write them. The protocol is
Hermes/Qwen function-calling style, which models know from training; it is the shared contract of
issue 15 (the emulator's protocol model reads exactly this).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence

from ..translate.chat_request import ChatMessage
from .toolset import ToolCall, ToolSet

INTRO = ("# Tools\n\n"
         "You may call one or more functions to assist with the user query.\n\n"
         "You are provided with function signatures within <tools></tools> XML tags:\n")
CALL_FORMAT = ("For each function call, return a json object with function name and arguments within "
               "<tool_call></tool_call> XML tags:\n"
               "<tool_call>\n"
               '{"name": <function-name>, "arguments": <args-json-object>}\n'
               "</tool_call>\n\n")
CHOICE_SENTENCES = {
    "auto": "Call a function only when it helps; otherwise answer directly.",
    "required": "You must call at least one function in this reply.",
}
ONE_CALL = "Call at most one function per reply."


def protocol_text(toolset: ToolSet) -> str:
    """The system text that teaches the protocol (tool_choice "none": no tools block is sent)."""
    lines = [_dumps({"type": "function", "function": {"name": tool.name, "description": tool.description,
                                                      "parameters": tool.parameters}})
             for tool in toolset.tools]
    sentences = [CHOICE_SENTENCES.get(toolset.choice) or f"You must call the function `{toolset.forced}` in this reply."]
    if not toolset.parallel:
        sentences.append(ONE_CALL)
    return INTRO + "<tools>\n" + "\n".join(lines) + "\n</tools>\n\n" + CALL_FORMAT + " ".join(sentences)


def call_block(call: ToolCall) -> str:
    return f"<tool_call>\n{_dumps({'name': call.name, 'arguments': _arguments(call.arguments)})}\n</tool_call>"


def render_history(messages: Sequence[ChatMessage]) -> List[ChatMessage]:
    """The messages as the upstream gets them: an assistant turn's calls as blocks after its text,
    each run of tool results as one user message of ``<tool_response>`` blocks. A history without
    tool traffic comes back as the very same messages."""
    names = {call.id: call.name for message in messages for call in message.tool_calls}
    out: List[ChatMessage] = []
    results: List[str] = []
    for message in messages:
        if message.role == "tool":
            results.append(_response_block(message, names))
            continue
        if results:
            out.append(ChatMessage("user", ("\n".join(results),)))
            results = []
        out.append(_with_calls(message) if message.tool_calls else message)
    if results:
        out.append(ChatMessage("user", ("\n".join(results),)))
    return out


def _with_calls(message: ChatMessage) -> ChatMessage:
    blocks = "\n".join(call_block(call) for call in message.tool_calls)
    text = message.text
    return ChatMessage(message.role, (f"{text}\n{blocks}" if text else blocks,))


def _response_block(message: ChatMessage, names: Dict[str, str]) -> str:
    # A legacy "function" message names itself; a tool message is named by the call it answers
    # (null when the client trimmed that call from the history: the result is still worth showing).
    name: Optional[str] = message.name or names.get(message.tool_call_id or "")
    payload = {"name": name, "tool_call_id": message.tool_call_id, "content": message.text}
    return f"<tool_response>\n{_dumps(payload)}\n</tool_response>"


def _arguments(arguments: str) -> Any:
    """The call's arguments as the JSON object the model wrote (kept as the string when they are not JSON)."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
