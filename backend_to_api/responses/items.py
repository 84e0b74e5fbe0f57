"""Responses input items <-> chat messages.

Input items are validated here (every problem a 400 naming the item) and turned into the
ChatMessages the conversation payload is built from. The same function reads the items a stored
response kept (its input and its output items), so a continued conversation is rebuilt exactly as
a client resending the whole history would have it.
"""
from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

from ..errors import bad_request
from ..tool_calls.toolset import ToolCall
from ..translate.chat_request import ChatMessage, ImagePart, check_part_url, parse_parts
from .tools import custom_arguments

# "developer" is the newer name of "system" (as in chat completions).
MESSAGE_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
TEXT_PARTS = ("input_text", "output_text", "text", "refusal")
# Items a client may send back from an earlier output that carry nothing the model must see again:
# the web model's thinking is not resent (it never is in chat either).
SKIPPED_ITEMS = ("reasoning",)


def normalize_input(value: Any, param: str = "input") -> List[dict]:
    """``input`` as a list of item objects: a string is one user message."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise bad_request("'input' must be a string or an array of input items.", param=param)
    return list(value)


CALL_ITEMS = ("function_call", "custom_tool_call")
OUTPUT_ITEMS = ("function_call_output", "custom_tool_call_output")


def items_to_messages(items: Sequence[Any], param: str = "input") -> List[ChatMessage]:
    """The chat messages of these items, in order. Consecutive calls (and the assistant text right
    before them) are one assistant turn, as a model emits them. Images or files a tool returned
    follow the run of results they belong to, as one user message (the protocol's results are text)."""
    messages: List[ChatMessage] = []
    returned: List[Any] = []  # images and files of the current run of tool results
    for index, item in enumerate(items):
        where = f"{param}[{index}]"
        if not isinstance(item, Mapping):
            raise bad_request(f"{where} must be an object.", param=where)
        kind = item.get("type", "message")  # EasyInputMessage leaves the type out
        if kind in OUTPUT_ITEMS:
            message = _call_output(item, where)
            messages.append(ChatMessage(role="tool", parts=(message.text,), tool_call_id=message.tool_call_id))
            returned.extend(_returned_files(message))
            continue
        if kind not in SKIPPED_ITEMS:
            _flush_returned(messages, returned)
        if kind == "message":
            messages.append(_message(item, where))
        elif kind in CALL_ITEMS:
            _append_call(messages, _call(item, where))
        elif kind not in SKIPPED_ITEMS:
            raise bad_request(f"{where}.type {kind!r} is not supported (use message, function_call, "
                              "function_call_output, custom_tool_call, custom_tool_call_output or reasoning).",
                              param=f"{where}.type")
    _flush_returned(messages, returned)
    return messages


def _returned_files(message: ChatMessage) -> List[Any]:
    if not message.images:
        return []
    return [f"(returned by the tool call {message.tool_call_id})", *message.images]


def _flush_returned(messages: List[ChatMessage], returned: List[Any]) -> None:
    if returned:
        messages.append(ChatMessage(role="user", parts=("The tools returned these files:", *returned)))
        returned.clear()


def _message(item: Mapping, where: str) -> ChatMessage:
    role = item.get("role")
    if not isinstance(role, str) or role not in MESSAGE_ROLES:
        raise bad_request(f"{where}.role must be one of {', '.join(MESSAGE_ROLES)}; got {role!r}.",
                          param=f"{where}.role")
    return ChatMessage(role=MESSAGE_ROLES[role], parts=tuple(_content(item.get("content"), f"{where}.content")))


def _content(content: Any, where: str) -> List[Any]:
    return parse_parts(content, where, _part)


def _part(part: Any, where: str) -> Any:
    if not isinstance(part, Mapping):
        raise bad_request(f"{where} must be an object.", param=where)
    kind = part.get("type")
    if kind in TEXT_PARTS:
        text = part.get("refusal") if kind == "refusal" else part.get("text")
        if not isinstance(text, str):
            raise bad_request(f"{where}.text must be a string.", param=f"{where}.text")
        return text
    if kind == "input_image":
        return _image(part, where)
    if kind == "input_file":
        return _file(part, where)
    raise bad_request(f"{where}.type {kind!r} is not supported (use input_text, input_image or input_file).",
                      param=f"{where}.type")


def _image(part: Mapping, where: str) -> ImagePart:
    url = part.get("image_url")
    if part.get("file_id") is not None and url is None:
        raise _no_file_ids(where)
    check_part_url(url, f"{where}.image_url", f"{where}.image_url")
    detail = part.get("detail")
    return ImagePart(url=url, detail=detail if isinstance(detail, str) else "auto")


def _file(part: Mapping, where: str) -> ImagePart:
    """A document rides as the chat's file parts do: its bytes (data: URI) or its URL, uploaded and
    attached upstream (translate/uploads.py tells images from other files by their bytes)."""
    data, url = part.get("file_data"), part.get("file_url")
    if data is None and url is None:
        if part.get("file_id") is not None:
            raise _no_file_ids(where)
        raise bad_request(f"{where} needs file_data (a data: URI) or file_url.", param=where)
    if data is not None:
        if not isinstance(data, str) or not data.startswith("data:"):
            raise bad_request(f"{where}.file_data must be a data: URI (data:<type>;base64,...).",
                              param=f"{where}.file_data")
        return ImagePart(url=data)
    check_part_url(url, f"{where}.file_url", f"{where}.file_url")
    return ImagePart(url=url)


def _no_file_ids(where: str):
    return bad_request(f"{where}.file_id is not supported: this service has no Files API; send the "
                       "file's bytes as a data: URI or its URL.", param=f"{where}.file_id")


def _call(item: Mapping, where: str) -> ToolCall:
    """A function call, or a custom tool call (its ``input`` string is the protocol's
    ``{"input": ...}`` arguments, as tools.py offers custom tools)."""
    custom = item.get("type") == "custom_tool_call"
    field = "input" if custom else "arguments"
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get(field)
    for key, value in (("call_id", call_id), ("name", name)):
        if not isinstance(value, str) or not value:
            raise bad_request(f"{where}.{key} must be a non-empty string.", param=f"{where}.{key}")
    if not isinstance(arguments, str):
        what = "the tool's input" if custom else "the call's JSON arguments"
        raise bad_request(f"{where}.{field} must be a string ({what}).", param=f"{where}.{field}")
    return ToolCall(id=call_id, name=name, arguments=custom_arguments(arguments) if custom else arguments)


def _append_call(messages: List[ChatMessage], call: ToolCall) -> None:
    last: Optional[ChatMessage] = messages[-1] if messages else None
    if last is not None and last.role == "assistant":
        messages[-1] = ChatMessage(role="assistant", parts=last.parts, tool_calls=last.tool_calls + (call,))
    else:
        messages.append(ChatMessage(role="assistant", parts=("",), tool_calls=(call,)))


def _call_output(item: Mapping, where: str) -> ChatMessage:
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(f"{where}.call_id must be a non-empty string.", param=f"{where}.call_id")
    return ChatMessage(role="tool", parts=_output_parts(output, f"{where}.output"), tool_call_id=call_id)


def _output_parts(output: Any, where: str) -> Tuple[Any, ...]:
    """A tool's output: a string, or (newer clients) a list of input_text / input_image /
    input_file parts: the text joined first, then the images and files."""
    if isinstance(output, str):
        return (output,)
    if isinstance(output, list):
        parts: Tuple[Any, ...] = tuple(_part(part, f"{where}[{index}]") for index, part in enumerate(output))
        files = tuple(part for part in parts if not isinstance(part, str))
        return ("".join(part for part in parts if isinstance(part, str)),) + files
    raise bad_request(f"{where} must be a string or an array of input_text, input_image or input_file parts.",
                      param=where)
