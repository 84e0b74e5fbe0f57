"""Typed events -> the text a user sees, the same for streamed and non-streamed replies.

What the web page shows is kept: code sent to the interpreter as a fenced block, its output under
`Result:` in a second fence (the original's strings), then the assistant's text. In bot mode without
``enabled_plugin_output`` the tool traffic is left out, as in the original.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ..settings import BotMode
from ..sse.events import (
    CodeDelta, ConversationId, Event, Finish, StreamEnd, TextDelta, ToolOutputDelta, UpstreamFailure,
)

FENCE = "\n```\n"
RESULT_HEADER = "`Result:` \n```\n"


@dataclass
class ReplyState:
    """What one reply has produced so far (read by the stream writer and the completion builder)."""

    conversation_id: Optional[str] = None
    finish_reason: str = "stop"
    failure: Optional[UpstreamFailure] = None
    saw_end: bool = False
    finish_seen: bool = False
    produced: List[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.produced)


class ReplyRenderer:
    def __init__(self, bot_mode: BotMode) -> None:
        self.show_tools = not bot_mode.enabled or bot_mode.plugin_output
        self.state = ReplyState()
        self._block: Optional[str] = None  # None, "code" or "result": the fence currently open

    def render(self, event: Event) -> str:
        """The text this event adds to the reply ("" for none)."""
        text = self._render(event)
        if text:
            self.state.produced.append(text)
        return text

    def _render(self, event: Event) -> str:
        if isinstance(event, TextDelta):
            return self._close_block() + event.text if event.text else ""
        if isinstance(event, CodeDelta):
            return self._code(event.text)
        if isinstance(event, ToolOutputDelta):
            return self._tool_output(event)
        self._record(event)
        return ""

    def _record(self, event: Event) -> None:
        state = self.state
        if isinstance(event, ConversationId):
            state.conversation_id = event.conversation_id
        elif isinstance(event, Finish):
            state.finish_reason = event.reason
            state.finish_seen = True
        elif isinstance(event, UpstreamFailure):
            state.failure = event
        elif isinstance(event, StreamEnd):
            state.saw_end = True

    def _code(self, text: str) -> str:
        if not self.show_tools or not text:
            return ""
        if self._block == "code":
            return text
        opening = self._close_block() + FENCE
        self._block = "code"
        return opening + text

    def _tool_output(self, event: ToolOutputDelta) -> str:
        if not self.show_tools or event.tool != "python" or not event.text:
            return ""
        if self._block == "result":
            return event.text
        opening = self._close_block() + RESULT_HEADER
        self._block = "result"
        return opening + event.text

    def _close_block(self) -> str:
        if self._block is None:
            return ""
        self._block = None
        return FENCE

    def finish(self) -> str:
        """Close an open fence at the end of the reply."""
        text = self._close_block()
        if text:
            self.state.produced.append(text)
        return text
