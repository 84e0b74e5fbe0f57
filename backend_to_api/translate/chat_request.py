"""Validate an OpenAI chat-completions body into a ChatRequest; every problem is a 400.

Sampling fields (temperature, top_p, max_tokens, tools, ...) are accepted and ignored: the web
backend has no equivalent, and NextChat/one-api always send some of them (openai-compat.md item 3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Tuple

from ..errors import bad_request
from .thinking import parse_reasoning_effort

# OpenAI roles -> upstream author roles. "developer" is the newer name of "system"; tool results
# have no upstream role of their own, so they are passed as user text (the model still sees them).
ROLE_MAP = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "user",
    "function": "user",
}


@dataclass(frozen=True)
class ImagePart:
    """An ``image_url`` content part: an http(s) URL or a data: URI (uploaded by the files layer)."""

    url: str
    detail: str = "auto"


@dataclass(frozen=True)
class ChatMessage:
    role: str                      # the upstream role
    parts: Tuple[Any, ...]         # str text pieces and ImagePart, in order

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
    return ChatRequest(
        model=model.strip(),
        messages=messages,
        stream=stream,
        include_usage=_include_usage(body.get("stream_options")),
        reasoning_effort=parse_reasoning_effort(body.get("reasoning_effort")),
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
    parts = _parse_content(item.get("content"), f"{param}.content")
    return ChatMessage(role=ROLE_MAP[role], parts=tuple(parts))


def _parse_content(content: Any, param: str) -> List[Any]:
    if content is None:
        return [""]  # assistant turns that only called tools have null content
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise bad_request(f"{param} must be a string or an array of content parts.", param=param)
    return [_parse_part(part, f"{param}[{index}]") for index, part in enumerate(content)]


def _parse_part(part: Any, param: str) -> Any:
    if not isinstance(part, Mapping):
        raise bad_request(f"{param} must be an object.", param=param)
    kind = part.get("type")
    if kind in ("text", "input_text"):
        text = part.get("text")
        if not isinstance(text, str):
            raise bad_request(f"{param}.text must be a string.", param=f"{param}.text")
        return text
    if kind == "image_url":
        return _parse_image_part(part.get("image_url"), param)
    raise bad_request(f"{param}.type {kind!r} is not supported (use text or image_url).", param=f"{param}.type")


def _parse_image_part(image: Any, param: str) -> ImagePart:
    # Some clients send the URL as a bare string instead of {"url": ...}.
    if isinstance(image, str):
        image = {"url": image}
    url = image.get("url") if isinstance(image, Mapping) else None
    if not isinstance(url, str) or not url:
        raise bad_request(f"{param}.image_url.url must be a non-empty string.", param=f"{param}.image_url")
    if not url.startswith(("http://", "https://", "data:")):
        raise bad_request(f"{param}.image_url.url must be an http(s) URL or a data: URI.", param=f"{param}.image_url",
                          code="url_not_allowed")
    detail = image.get("detail", "auto")
    return ImagePart(url=url, detail=detail if isinstance(detail, str) else "auto")
