"""OpenAI response shapes, and the one place that formats SSE lines.

Wire rules (openai-compat.md items 7-18): every event is ``data: <one-line JSON>\\n\\n``; one id and
created for all chunks; role in the first delta; incremental content; ``finish_reason`` present
(null until the final chunk); usage chunk only when asked; then ``data: [DONE]``. one-api reads
lines with a 64 KiB limit, so large deltas are split across chunks.
"""
from __future__ import annotations

import time
import uuid
from typing import Iterator, Optional, Sequence

from ..tool_calls.toolset import ToolCall

from .. import jsonbytes

KEEP_ALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"
MAX_DELTA_CHARS = 8 * 1024  # <= 32 KiB of UTF-8 even for 4-byte characters, far under 64 KiB


def sse(payload: dict) -> bytes:
    return b"data: " + jsonbytes.dumps(payload) + b"\n\n"


class ChunkFactory:
    """Chunks of one completion: shared id, created and model."""

    def __init__(self, model: str, include_usage: bool = False, sent_slug: Optional[str] = None) -> None:
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.created = int(time.time())
        self.model = self.requested = model
        self.sent_slug = sent_slug  # the upstream slug the request asked for
        # With stream_options.include_usage, OpenAI's other chunks carry "usage": null.
        self.include_usage = include_usage
        self._prepare_content()

    def answered_by(self, slug: str) -> None:
        """The upstream named the model that answers: later chunks (and the completion) say it.
        The slug we asked for keeps the client's own name (``gpt-4.1`` stays that, not ``gpt-4-1``);
        another one is a different model (``auto`` routed, a downgrade) and is shown as it is."""
        model = self.requested if slug == self.sent_slug else slug
        if model != self.model:
            self.model = model
            self._prepare_content()

    def _prepare_content(self) -> None:
        # A content chunk differs from the next only in its text: serialize the rest once, around
        # the text's place (every streamed delta goes through here).
        empty = sse(self.chunk({"content": ""}))
        self._content_head, self._content_tail = empty.split(b'"content":""', 1)

    def chunk(self, delta: dict, finish_reason: Optional[str] = None) -> dict:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def role(self, tools: bool = False) -> bytes:
        """``tools``: the request offered tools, so the reply may be calls only, whose content
        OpenAI streams as null (the openai SDK's stream helper then ends with content None, not "")."""
        return sse(self.chunk({"role": "assistant", "content": None if tools else ""}))

    def content(self, text: str) -> Iterator[bytes]:
        for start in range(0, len(text), MAX_DELTA_CHARS):
            piece = jsonbytes.dumps(text[start:start + MAX_DELTA_CHARS])
            yield b"".join((self._content_head, b'"content":', piece, self._content_tail))

    def reasoning(self, text: str) -> Iterator[bytes]:
        """Thinking of a reasoning model as ``delta.reasoning_content`` (DeepSeek's field, which NextChat
        and other clients show apart from the answer; OpenAI's own o1 API shows no thinking)."""
        for start in range(0, len(text), MAX_DELTA_CHARS):
            yield sse(self.chunk({"reasoning_content": text[start:start + MAX_DELTA_CHARS]}))

    def tool_call(self, index: int, call: ToolCall, legacy: bool = False) -> Iterator[bytes]:
        """A call as OpenAI streams it: id, type and name with empty arguments, then the arguments.
        ``legacy``: the deprecated ``delta.function_call`` (name, then arguments; no id, no index)."""
        function = {"name": call.name, "arguments": ""}
        if legacy:
            yield sse(self.chunk({"function_call": function}))
        else:
            yield sse(self.chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                                  "function": function}]}))
        for start in range(0, len(call.arguments), MAX_DELTA_CHARS):
            fragment = {"arguments": call.arguments[start:start + MAX_DELTA_CHARS]}
            delta = {"function_call": fragment} if legacy else {"tool_calls": [{"index": index, "function": fragment}]}
            yield sse(self.chunk(delta))

    def finish(self, reason: str) -> bytes:
        return sse(self.chunk({}, reason))

    def usage(self, usage: dict) -> bytes:
        chunk = self.chunk({})
        chunk["choices"] = []
        chunk["usage"] = usage
        return sse(chunk)

    def error(self, error_body: dict) -> bytes:
        return sse(error_body)

    def with_reasoning(self, completion: dict, reasoning: str) -> dict:
        """``message.reasoning_content`` of a non-streamed completion, when there was thinking."""
        if reasoning:
            completion["choices"][0]["message"]["reasoning_content"] = reasoning
        return completion

    def completion(self, text: Optional[str], finish_reason: str, usage: dict,
                   tool_calls: Sequence[ToolCall] = (), legacy: bool = False) -> dict:
        """``text`` None: a reply that only called tools (OpenAI's content is null then).
        ``legacy``: the (one) call as the deprecated ``message.function_call``."""
        message = {"role": "assistant", "content": text, "refusal": None}
        if tool_calls and legacy:
            message["function_call"] = {"name": tool_calls[0].name, "arguments": tool_calls[0].arguments}
        elif tool_calls:
            message["tool_calls"] = [{"id": call.id, "type": "function",
                                      "function": {"name": call.name, "arguments": call.arguments}}
                                     for call in tool_calls]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
            }],
            "usage": usage,
        }
