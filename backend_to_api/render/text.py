"""Typed events -> the text a user sees, the same for streamed and non-streamed replies.

What the web page shows is kept: code sent to the interpreter as a fenced block, its output under
`Result:` in a second fence (the original's strings), then the assistant's text. In bot mode without
``enabled_plugin_output`` the tool traffic is left out, as in the original.

Tool output that points upstream (images, sandbox files) is resolved through a ``MediaResolver``
handed in by the caller, so this module itself stays free of HTTP; citations and sandbox links in
assistant text go through ``AssistantText``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ..media import MediaResolver
from ..settings import BotMode
from ..sse.events import (
    CodeDelta, ConversationId, Event, Finish, ImagePointer, MessageFinished, StreamEnd, TextDelta,
    ToolOutputDelta, UpstreamFailure,
)
from ..sse.events import HandOff, ReasoningDelta, is_thinking
from .assistant_text import AssistantText
from .images import image_style, image_text

FENCE = "\n```\n"
RESULT_HEADER = "`Result:` \n```\n"
IMAGE_PLACEHOLDER = "<<ImageDisplayed>>"


@dataclass
class ReplyState:
    """What one reply has produced so far (read by the stream writer and the completion builder)."""

    conversation_id: Optional[str] = None
    finish_reason: str = "stop"
    failure: Optional[UpstreamFailure] = None
    saw_end: bool = False
    finish_seen: bool = False
    produced: List[str] = field(default_factory=list)
    reasoning: List[str] = field(default_factory=list)  # a reasoning model's visible thinking
    handoff_topics: List[str] = field(default_factory=list)  # WebSocket topics the reply moved to

    @property
    def text(self) -> str:
        return "".join(self.produced)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)


class ReplyRenderer:
    def __init__(self, bot_mode: BotMode, media: Optional[MediaResolver] = None) -> None:
        self.show_tools = not bot_mode.enabled or bot_mode.plugin_output
        self.state = ReplyState()
        self._block: Optional[str] = None  # None, "code" or "result": the fence currently open
        self._media = media
        self._image_style = image_style(bot_mode)
        self._assistant = AssistantText(not bot_mode.enabled or bot_mode.bing_reference_output, self._sandbox_url)

    def force_images(self) -> None:
        """Show (and so fetch) images even where bot mode would leave them out (the images API)."""
        if self._image_style is None:
            self._image_style = "markdown"

    def render(self, event: Event) -> str:
        """The text this event adds to the reply ("" for none)."""
        text = self._render(event)
        if text:
            self.state.produced.append(text)
        return text

    def _render(self, event: Event) -> str:
        if isinstance(event, TextDelta):
            return self._close_block() + self._assistant.feed(event.text, event.message_id, event.message)
        if isinstance(event, MessageFinished):
            self._note_final_answer(event)
            return self._assistant.finish_message(event.message_id, event.message)
        if isinstance(event, ImagePointer):
            return self._image(event)
        if isinstance(event, CodeDelta):
            return self._code(event.text)
        if isinstance(event, ToolOutputDelta):
            return self._tool_output(event)
        self._record(event)
        return ""

    def _note_final_answer(self, event: MessageFinished) -> None:
        """An assistant answer to the user that finished with end_turn: the reply is whole even if
        the body then ends without [DONE] or finish_details (some mirrors send neither)."""
        message = event.message
        if (event.role == "assistant" and message.get("recipient") in (None, "all")
                and message.get("end_turn") is not False and not is_thinking(message)):
            self.state.finish_seen = True

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
        elif isinstance(event, HandOff):
            state.handoff_topics.append(event.topic_id)

    def _code(self, text: str) -> str:
        if not self.show_tools or not text:
            return ""
        if self._block == "code":
            return text
        opening = self._close_block() + FENCE
        self._block = "code"
        return opening + text

    def _tool_output(self, event: ToolOutputDelta) -> str:
        # The placeholder stands for a plot that follows as an ImagePointer: the image says it better.
        text = event.text.replace(IMAGE_PLACEHOLDER, "")
        if not self.show_tools or event.tool != "python" or not text:
            return ""
        if self._block == "result":
            return text
        opening = self._close_block() + RESULT_HEADER
        self._block = "result"
        return opening + text

    def _image(self, event: ImagePointer) -> str:
        if self._image_style is None:
            return ""
        url = (self._media.image_url(event.file_id, event.scheme, self.state.conversation_id)
               if self._media is not None else None)
        return self._close_block() + image_text(url, self._image_style, bool(self.state.produced))

    def _sandbox_url(self, message_id: str, path: str) -> Optional[str]:
        if self._media is None:
            return None
        return self._media.sandbox_url(self.state.conversation_id, message_id, path)

    def reasoning(self, event: ReasoningDelta) -> str:
        """A reasoning model's thinking: kept apart from the reply text (OpenAI-style ``reasoning_content``)."""
        if event.text:
            self.state.reasoning.append(event.text)
        return event.text

    def _close_block(self) -> str:
        if self._block is None:
            return ""
        self._block = None
        return FENCE

    def finish(self) -> str:
        """Release held-back text and close an open fence at the end of the reply."""
        text = self._assistant.flush() + self._close_block()
        if text:
            self.state.produced.append(text)
        return text
