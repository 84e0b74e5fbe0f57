"""Validate an OpenAI chat-completions body into a ChatRequest; every problem is a 400.

Sampling fields (temperature, top_p, max_tokens, ...) are accepted and ignored: the web backend has
no equivalent, and NextChat/one-api always send some of them (openai-compat.md item 3). Tools are
honoured (``tools``, ``tool_choice``, ``parallel_tool_calls``: tool_calls/toolset.py), and so is the
tool traffic of the history: assistant ``tool_calls`` and ``tool`` (legacy ``function``) results,
which translate/conversation.py renders for the model (tool_calls/prompt.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Optional, Tuple

from ..errors import bad_request
from ..structured_output import OutputFormat, parse_response_format
from ..tool_calls.toolset import ToolCall, ToolSet, parse_chat_tools
from .thinking import parse_reasoning_effort

# OpenAI roles -> our roles, which are the upstream's but for "tool": the upstream has no role for
# tool results, so conversation.py renders them as user text (tool_calls/prompt.py). "developer" is
# the newer name of "system"; "function" is the legacy name of "tool".
ROLE_MAP = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}


@dataclass(frozen=True)
class ImagePart:
    """An ``image_url`` content part: an http(s) URL or a data: URI (uploaded by the files layer)."""

    url: str
    detail: str = "auto"


@dataclass(frozen=True)
class ChatMessage:
    role: str                      # the upstream role, or "tool" (a tool result)
    parts: Tuple[Any, ...]         # str text pieces and ImagePart, in order
    tool_calls: Tuple[ToolCall, ...] = ()  # an assistant turn's calls
    tool_call_id: Optional[str] = None     # a tool result: the call it answers
    name: Optional[str] = None             # a legacy "function" result: the function's name

    @property
    def text(self) -> str:
        return "\n".join(part for part in self.parts if isinstance(part, str))

    @property
    def images(self) -> Tuple[ImagePart, ...]:
        return tuple(part for part in self.parts if isinstance(part, ImagePart))


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: Tuple[ChatMessage, ...]
    stream: bool
    include_usage: bool
    reasoning_effort: Optional[str] = None  # already the upstream's word (thinking.py), None: not asked
    tools: Optional[ToolSet] = None  # None: no tools offered
    output_format: Optional[OutputFormat] = None  # response_format json_object / json_schema (structured_output.py)


def parse_chat_request(body: Any, max_files: Optional[int] = None) -> ChatRequest:
    if not isinstance(body, Mapping):
        raise bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("You must provide a model parameter.", param="model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean.", param="stream")
    messages = _parse_messages(body.get("messages"))
    files = sum(len(message.images) for message in messages)
    if max_files is not None and files > max_files:
        raise bad_request(f"The request carries {files} images or files; at most {max_files} are accepted.",
                          param="messages", code="too_many_files")
    tools = parse_chat_tools(body)
    return ChatRequest(
        model=model.strip(),
        messages=messages,
        stream=stream,
        include_usage=_include_usage(body.get("stream_options")),
        reasoning_effort=parse_reasoning_effort(body.get("reasoning_effort")),
        tools=tools,
        output_format=parse_response_format(body.get("response_format")),
    )


def _include_usage(options: Any) -> bool:
    if options is None:
        return False
    if not isinstance(options, Mapping):
        raise bad_request("'stream_options' must be an object.", param="stream_options")
    return options.get("include_usage") is True


def _parse_messages(messages: Any) -> Tuple[ChatMessage, ...]:
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array.", param="messages")
    return tuple(_parse_message(item, index) for index, item in enumerate(messages))


def _parse_message(item: Any, index: int) -> ChatMessage:
    param = f"messages[{index}]"
    if not isinstance(item, Mapping):
        raise bad_request(f"{param} must be an object.", param=param)
    role = item.get("role")
    if not isinstance(role, str) or role not in ROLE_MAP:
        raise bad_request(
            f"{param}.role must be one of {', '.join(ROLE_MAP)}; got {role!r}.", param=f"{param}.role"
        )
    if role in ("tool", "function"):
        return parse_tool_result(item, param)
    parts = _parse_content(item.get("content"), f"{param}.content")
    calls = parse_assistant_calls(item, param) if role == "assistant" else ()
    return ChatMessage(role=ROLE_MAP[role], parts=tuple(parts), tool_calls=calls)


def _parse_content(content: Any, param: str) -> List[Any]:
    if content is None:
        return [""]  # assistant turns that only called tools have null content
    return parse_parts(content, param, _parse_part)


def parse_parts(content: Any, param: str, parse_part: Callable[[Any, str], Any]) -> List[Any]:
    """A message's content: a string, or an array of parts each read by ``parse_part(part, param)``
    (chat's and the Responses API's part vocabularies differ; the shape around them does not)."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise bad_request(f"{param} must be a string or an array of content parts.", param=param)
    return [parse_part(part, f"{param}[{index}]") for index, part in enumerate(content)]


def _parse_part(part: Any, param: str) -> Any:
    if not isinstance(part, Mapping):
        raise bad_request(f"{param} must be an object.", param=param)
    kind = part.get("type")
    if kind in ("text", "input_text"):
        text = part.get("text")
        if not isinstance(text, str):
            raise bad_request(f"{param}.text must be a string.", param=f"{param}.text")
        return text
    if kind == "refusal":  # an assistant turn that declined: clients (the Agents SDK) send it back
        refusal = part.get("refusal")
        if not isinstance(refusal, str):
            raise bad_request(f"{param}.refusal must be a string.", param=f"{param}.refusal")
        return refusal
    if kind == "image_url":
        return _parse_image_part(part.get("image_url"), param)
    raise bad_request(f"{param}.type {kind!r} is not supported (use text or image_url).", param=f"{param}.type")


def _parse_image_part(image: Any, param: str) -> ImagePart:
    # Some clients send the URL as a bare string instead of {"url": ...}.
    if isinstance(image, str):
        image = {"url": image}
    url = image.get("url") if isinstance(image, Mapping) else None
    check_part_url(url, f"{param}.image_url.url", f"{param}.image_url")
    detail = image.get("detail", "auto")
    return ImagePart(url=url, detail=detail if isinstance(detail, str) else "auto")


def check_part_url(url: Any, name: str, param: str) -> None:
    """An image or file part's URL: http(s) (fetched later through the address checks) or data:."""
    if not isinstance(url, str) or not url:
        raise bad_request(f"{name} must be a non-empty string.", param=param)
    if not url.startswith(("http://", "https://", "data:")):
        raise bad_request(f"{name} must be an http(s) URL or a data: URI.", param=param, code="url_not_allowed")


def parse_assistant_calls(item: Mapping, param: str) -> Tuple[ToolCall, ...]:
    """An assistant turn's ``tool_calls`` (or the legacy single ``function_call``)."""
    calls = item.get("tool_calls")
    legacy = item.get("function_call")
    if calls is None:
        return () if legacy is None else (_parse_function(legacy, "", f"{param}.function_call"),)
    if not isinstance(calls, list):
        raise bad_request(f"{param}.tool_calls must be an array.", param=f"{param}.tool_calls")
    return tuple(_parse_call(call, f"{param}.tool_calls[{index}]") for index, call in enumerate(calls))


def _parse_call(call: Any, param: str) -> ToolCall:
    if not isinstance(call, Mapping):
        raise bad_request(f"{param} must be an object.", param=param)
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(f"{param}.id must be a non-empty string.", param=f"{param}.id")
    if call.get("type", "function") != "function":
        raise bad_request(f"{param}.type must be 'function'.", param=f"{param}.type")
    return _parse_function(call.get("function"), call_id, f"{param}.function")


def _parse_function(function: Any, call_id: str, param: str) -> ToolCall:
    if not isinstance(function, Mapping):
        raise bad_request(f"{param} must be an object.", param=param)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(f"{param}.name must be a non-empty string.", param=f"{param}.name")
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        raise bad_request(f"{param}.arguments must be a string (the arguments as JSON text).",
                          param=f"{param}.arguments")
    return ToolCall(id=call_id, name=name, arguments=arguments)


def parse_tool_result(item: Mapping, param: str) -> ChatMessage:
    """A ``tool`` message (``tool_call_id``) or a legacy ``function`` one (``name``); text only."""
    if item["role"] == "tool":
        call_id, name = item.get("tool_call_id"), None
        if not isinstance(call_id, str) or not call_id:
            raise bad_request(f"{param}.tool_call_id must be a non-empty string: the id of the call this "
                              "message answers.", param=f"{param}.tool_call_id")
    else:
        call_id, name = None, item.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request(f"{param}.name must be the function's name.", param=f"{param}.name")
    parts = _parse_content(item.get("content"), f"{param}.content")
    if any(isinstance(part, ImagePart) for part in parts):
        raise bad_request(f"{param}.content must be text: a tool result cannot carry images.",
                          param=f"{param}.content")
    return ChatMessage(role="tool", parts=tuple(parts), tool_call_id=call_id, name=name)
