"""The reply text of a request that offered tools -> content and OpenAI tool calls.

The ReplyRenderer's text (what the user would see) goes through a ToolCallParser: text pieces are
content as always, calls become ``delta.tool_calls`` chunks (streaming) or ``message.tool_calls``.
The renderer's own record keeps the raw text, blocks included, so usage counts the calls as
completion tokens. A request without tools never builds one of these (``for_request`` is None) and
its chunks pay nothing for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

from ..tool_calls.parser import Piece, ToolCallParser
from ..tool_calls.toolset import ToolCall, ToolSet
from .chunks import ChunkFactory


class ToolCallReply:
    """One reply's calls, in the order made (their index in ``delta.tool_calls``)."""

    def __init__(self, toolset: ToolSet) -> None:
        self._parser = ToolCallParser(toolset)
        self.legacy = toolset.legacy
        self.calls: List[ToolCall] = []

    def chunks(self, text: str, factory: ChunkFactory) -> List[bytes]:
        return self._chunks(self._parser.feed(text), factory)

    def finish_chunks(self, factory: ChunkFactory, whole: bool = True) -> List[bytes]:
        """``whole``: the reply ended as it should (a failed one's open block stays text)."""
        return self._chunks(self._parser.finish(whole), factory)

    def finish_reason(self, reason: str) -> str:
        if not self.calls:
            return reason
        return "function_call" if self.legacy else "tool_calls"

    def call_chunks(self, index: int, call: ToolCall, factory: ChunkFactory) -> Iterator[bytes]:
        return factory.tool_call(index, call, self.legacy)

    def split(self, text: str) -> "SplitReply":
        """A whole reply's text (non-streaming) as content and calls."""
        pieces = self._parser.feed(text) + self._parser.finish()
        self.calls = [piece for piece in pieces if isinstance(piece, ToolCall)]
        content = "".join(piece for piece in pieces if isinstance(piece, str))
        return SplitReply(content=content or None, calls=tuple(self.calls))

    def _chunks(self, pieces: List[Piece], factory: ChunkFactory) -> List[bytes]:
        out: List[bytes] = []
        for piece in pieces:
            if isinstance(piece, str):
                out.extend(factory.content(piece))
            else:
                out.extend(self.call_chunks(len(self.calls), piece, factory))
                self.calls.append(piece)
        return out


@dataclass(frozen=True)
class SplitReply:
    content: Optional[str]  # None when the reply only called tools
    calls: Tuple[ToolCall, ...]


def for_request(toolset: Optional[ToolSet]) -> Optional[ToolCallReply]:
    """The reader a request needs: none without tools, or with tool_choice "none" (the model was
    shown no tools then, and its text is passed on as it is)."""
    if toolset is None or toolset.choice == "none":
        return None
    return ToolCallReply(toolset)
