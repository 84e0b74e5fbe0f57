"""An open reply -> OpenAI SSE bytes (streaming) or one chat.completion (non-streaming).

Both read the same events through the same ReplyRenderer, so they can never disagree on the text.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from itertools import chain
from typing import Any, Callable, Iterator, List, Optional

from ..errors import ApiError, ClientGone, UpstreamError, content_blocked, empty_reply, stream_failure, upstream_timeout
from ..sse.events import ModelSlug, ReasoningDelta, StreamEnd
from ..upstream.reply import WAITING
from .chunks import DONE, KEEP_ALIVE, ChunkFactory
from .text import ReplyRenderer
from .tool_calls import ToolCallReply
from .usage import usage

log = logging.getLogger(__name__)

TICK = 0.5  # how often a silent stream checks whether its client is still there


@dataclass
class ReplyContext:
    """Everything the writers need besides the events."""

    factory: ChunkFactory
    renderer: ReplyRenderer
    prompt_tokens: Callable[[], int]  # counted only when usage is reported (it can be a big prompt)
    encoding: str
    keep_alive_interval: float
    client_gone: Callable[[], bool]
    include_usage: bool = False
    sleep_between_chunks: float = 0.0
    tool_calls: Optional[ToolCallReply] = None  # tools offered: the text is read for calls


def read_batches(opened, context: ReplyContext, on_idle: Callable[[], Any]) -> Iterator[Any]:
    """Events in the groups they were read in, those read while the reply was awaited first; on
    each idle tick, what ``on_idle`` returns instead. Ends with the batch that holds StreamEnd."""
    reads = opened.reply.batches(timeout=min(TICK, context.keep_alive_interval))
    for batch in chain([opened.pending], reads):
        if batch is WAITING:
            if context.client_gone():
                raise ClientGone()
            yield on_idle()
            continue
        end = next((index for index, event in enumerate(batch) if isinstance(event, StreamEnd)), None)
        if end is not None:
            yield batch[:end + 1]
            return
        yield batch


def _events(opened, context: ReplyContext, on_idle: Callable[[], Any]) -> Iterator[Any]:
    """The same, one event at a time."""
    for batch in read_batches(opened, context, on_idle):
        if isinstance(batch, list):
            yield from batch
        else:
            yield batch


def incomplete(context: ReplyContext) -> Optional[str]:
    """Why the reply is not whole, or None when it is."""
    state = context.renderer.state
    if state.failure is not None:
        return state.failure.message
    if not state.saw_end and not state.finish_seen:
        return "the upstream closed the stream before the reply was complete"
    return None


def stream_reply(opened, context: ReplyContext) -> Iterator[bytes]:
    """The SSE body of a streamed completion.

    The chunks of one upstream read go out in one write. A proxy that falls behind finds several
    events in a read, and one write for all of them spares a send and the server's per-write work
    for each (SSE clients read events, not writes).
    """
    renderer = context.renderer
    # The role chunk goes with the events read while waiting, and is made after them: when they
    # name the answering model (they usually do), the first chunk says it like all the others.
    writes = _Writes(lambda: context.factory.role(tools=context.tool_calls is not None))

    def on_idle() -> Optional[bytes]:
        if time.monotonic() - writes.last >= context.keep_alive_interval:
            writes.last = time.monotonic()
            return KEEP_ALIVE
        return None

    error: Optional[ApiError] = None
    try:
        for batch in read_batches(opened, context, on_idle):
            if not isinstance(batch, list):  # an idle tick: a keep-alive or nothing
                if batch:
                    yield batch
                continue
            for event in batch:
                pieces = _chunks(context, event)
                writes.pending += pieces
                if pieces and context.sleep_between_chunks:
                    yield writes.take()
                    time.sleep(context.sleep_between_chunks)
                if renderer.state.failure is not None:
                    break
            if writes.pending or writes.role_due:
                yield writes.take()
            elif context.tool_calls is not None:  # a call being written shows nothing until it closes
                beat = on_idle()
                if beat:
                    yield beat
            if renderer.state.failure is not None:
                break
    except ClientGone:
        raise
    except Exception as exc:  # a bug too must end the stream with an error frame, finish and [DONE]
        error = stream_failure(exc, log, "rendering the reply")
    writes.pending += _stream_tail(context, error)  # after what a failed batch had rendered
    yield writes.take()


class _Writes:
    """Chunks waiting to go out together, and when the client was last written to; the first write
    starts with the role chunk, made then."""

    def __init__(self, role: Callable[[], bytes]) -> None:
        self.pending: List[bytes] = []
        self.last = time.monotonic()
        self._role: Optional[Callable[[], bytes]] = role

    @property
    def role_due(self) -> bool:
        return self._role is not None

    def take(self) -> bytes:
        pending, self.pending = self.pending, []
        if self._role is not None:
            pending.insert(0, self._role())
            self._role = None
        self.last = time.monotonic()
        return pending[0] if len(pending) == 1 else b"".join(pending)


def _chunks(context: ReplyContext, event) -> List[bytes]:
    """The chunks one event renders to (none for most bookkeeping events)."""
    if isinstance(event, ReasoningDelta):
        return list(context.factory.reasoning(context.renderer.reasoning(event)))
    if isinstance(event, ModelSlug):
        context.factory.answered_by(event.slug)
        return []
    text = context.renderer.render(event)
    if not text:
        return []
    if context.tool_calls is None:
        return list(context.factory.content(text))
    return context.tool_calls.chunks(text, context.factory)


def _stream_tail(context: ReplyContext, error: Optional[ApiError]) -> Iterator[bytes]:
    """Close fences; on failure a visible note and an error frame (openai-compat.md item 23); then
    the finish chunk, the usage chunk when asked, and [DONE]."""
    factory, renderer = context.factory, context.renderer
    tail = renderer.finish()
    reason = error.message if error is not None else incomplete(context)
    calls = context.tool_calls
    if calls is None:
        if tail:
            yield from factory.content(tail)
    else:  # a block left open by a failed reply is not repaired into a call: it may be cut short
        yield from calls.chunks(tail, factory) + calls.finish_chunks(factory, whole=reason is None)
    if reason is not None:
        failure = error or UpstreamError(502, f"The upstream failed mid-reply: {reason}", code="upstream_error")
        yield from factory.content(f"\n\n[error: {failure.message}]")
        yield factory.error(failure.body())
    state = renderer.state
    yield factory.finish(state.finish_reason if calls is None else calls.finish_reason(state.finish_reason))
    if context.include_usage:
        yield factory.usage(usage(context.prompt_tokens(), state.text, context.encoding))
    yield DONE


def complete_reply(opened, context: ReplyContext, deadline: Optional[float] = None) -> dict:
    """Read the whole reply and build one chat.completion; failures raise ApiError.

    ``deadline`` (a time.monotonic() value) bounds the whole reply: a client waiting for one JSON
    answer gets a 504 rather than an upstream that trickles forever."""
    renderer = context.renderer

    def past_deadline() -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise upstream_timeout("the whole non-stream reply")

    for event in _events(opened, context, past_deadline):
        if isinstance(event, ReasoningDelta):
            renderer.reasoning(event)
        elif isinstance(event, ModelSlug):
            context.factory.answered_by(event.slug)
        elif event is not None:
            renderer.render(event)
        if renderer.state.failure is not None:
            break
        past_deadline()
    text = finished_text(context)
    completion = _completion(context, text)
    return context.factory.with_reasoning(completion, renderer.state.reasoning_text)


def _completion(context: ReplyContext, text: str) -> dict:
    """The chat.completion of a whole reply; with tools, its calls apart from its content. Usage
    counts the whole text, calls included: the model wrote them."""
    counted = usage(context.prompt_tokens(), text, context.encoding)
    reason = context.renderer.state.finish_reason
    if context.tool_calls is None:
        return context.factory.completion(text, reason, counted)
    split = context.tool_calls.split(text)
    return context.factory.completion(split.content, context.tool_calls.finish_reason(reason), counted, split.calls,
                                      legacy=context.tool_calls.legacy)


def finished_text(context: ReplyContext) -> str:
    """The whole text of a reply read to its end; a failed, cut or empty reply raises ApiError
    (also used by structured_reply.py, which reads the reply itself to stream its thinking)."""
    renderer = context.renderer
    renderer.finish()
    failure = renderer.state.failure
    if failure is not None and failure.code == "content_policy_violation":
        raise content_blocked(failure.message)
    reason = incomplete(context)
    if reason is not None:
        raise UpstreamError(502, f"The upstream failed mid-reply: {reason}", code="upstream_error")
    text = renderer.state.text
    if not text:
        raise empty_reply()
    return text
