"""Typed events: what one upstream reply means, independent of how it was encoded.

The interpreter (``sse.interpret``) turns upstream SSE events (cumulative ``parts`` or v1 deltas) into
these; the renderer (``render``) turns these into OpenAI chunks. Neither side knows the other's format.

Deltas are always *new* text only: the interpreter has already diffed cumulative snapshots per message
id. ``message`` is the latest snapshot of the upstream message the delta belongs to (read-only), so a
renderer can look at metadata (citations, model slug) without the interpreter knowing why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

@dataclass(frozen=True)
class ConversationId:
    """The upstream conversation id, reported once, as soon as it is known."""

    conversation_id: str


@dataclass(frozen=True)
class TextDelta:
    """New assistant text addressed to the user (``recipient: all``)."""

    text: str
    message_id: str
    message: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ReasoningDelta:
    """New visible thinking, for ``reasoning_content``: a ``thoughts`` message (o1, gpt-5 thinking;
    its summaries and contents) or the text of an ``analysis``-channel message (spec 2026, 3.5)."""

    text: str
    message_id: str


@dataclass(frozen=True)
class ActionConfirmation:
    """A GPT action waits for the user's go-ahead (``jit_plugin_data.from_server.type: confirm_action``);
    the fields are what the answer must quote back (spec/backend-api.md, "GPT actions")."""

    message_id: str
    role: str
    name: Optional[str]
    target_message_id: str
    operation_hash: str
    conversation_id: Optional[str]


@dataclass(frozen=True)
class CodeDelta:
    """New text of an assistant message addressed to a tool (``content_type: code``)."""

    text: str
    message_id: str
    recipient: str
    message: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ToolOutputDelta:
    """New text of a tool's result message (e.g. python ``execution_output``)."""

    text: str
    message_id: str
    tool: str
    content_type: str
    message: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ImagePointer:
    """An image a tool produced (DALL-E or picture_v2 part, python output), as an upstream file id
    and its pointer's scheme: ``file-service`` or ``sediment`` (picture_v2's, fetched through the
    conversation that made it). Partial previews are not reported.

    Reported once per file id per message; the renderer turns it into a link the user can open.
    """

    file_id: str
    message_id: str
    scheme: str = "file-service"


@dataclass(frozen=True)
class MessageFinished:
    """An upstream message reached a final status; ``message`` is its last snapshot."""

    message_id: str
    role: str
    message: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Finish:
    """The upstream said why the turn ended: ``stop`` or ``length`` (OpenAI finish_reason values)."""

    reason: str


@dataclass(frozen=True)
class UpstreamFailure:
    """The upstream reported an error inside the stream (an ``error`` field, or an error frame)."""

    message: str
    code: Optional[str] = None


@dataclass(frozen=True)
class ModelSlug:
    """The model that answers, as the upstream names it (``message.metadata.model_slug`` or
    ``server_ste_metadata.metadata.model_slug``): reported when first seen and when it changes."""

    slug: str


@dataclass(frozen=True)
class HandOff:
    """The upstream moves the rest of the reply to its WebSocket (``stream_handoff``, spec 2026 3.6):
    the topic to subscribe to. Nothing of it is text. ``derived``: not named by the upstream but
    made from ``server_ste_metadata``'s turn_exchange_id, as [A] does (a named topic wins)."""

    topic_id: str
    derived: bool = False


@dataclass(frozen=True)
class StreamEnd:
    """The upstream sent ``[DONE]``. A stream that ends without it produces no StreamEnd."""


Event = Union[
    ConversationId,
    TextDelta,
    ReasoningDelta,
    ActionConfirmation,
    CodeDelta,
    ToolOutputDelta,
    ImagePointer,
    MessageFinished,
    Finish,
    UpstreamFailure,
    ModelSlug,
    HandOff,
    StreamEnd,
]

BOOKKEEPING = (ConversationId, ModelSlug, HandOff)
"""Events that say nothing about whether the upstream is answering (the reply's metadata; a
hand-off topic: the answer is still to come, on the WebSocket, and a failure there is still an HTTP error)."""

THINKING_CONTENT_TYPES = ("thoughts", "reasoning_recap")


def is_thinking(message: Mapping[str, Any]) -> bool:
    """A message of the model's thinking rather than its answer: ``thoughts`` or the recap that
    closes them, or any message on the ``analysis`` channel. Such a message never ends the turn."""
    content = message.get("content")
    content_type = content.get("content_type") if isinstance(content, dict) else None
    return message.get("channel") == "analysis" or content_type in THINKING_CONTENT_TYPES
