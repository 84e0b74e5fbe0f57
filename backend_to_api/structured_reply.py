"""A chat reply with a response format: read whole, checked, retried once.

The model's text is held until its reply has ended and passed ``OutputFormat.check``: the client
gets the JSON alone (fences and prose around it taken off). A reply that does not fit gets ONE new
turn (the request's messages + the bad reply + the correction); if that fails too, the answer is
``invalid_output`` (502). A reply that failed upstream (cut, empty, blocked) is not retried: that is
the usual error, as for any chat. Thinking is not held: a stream sends it as it comes.

A stream sends its role chunk at once and keep-alive comments while the reply is read (clients
would time out on minutes of silence), then the JSON in content chunks, the finish chunk, usage
when asked and [DONE]; a failure after the headers is a visible note and an error frame, as
render/stream.py ends a failed stream.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Generator, Iterator, List, Optional, Tuple

from .chat_service import OpenReply
from .errors import ApiError, ClientGone, UpstreamError, stream_failure
from .render.chunks import DONE, KEEP_ALIVE, ChunkFactory
from .render.stream import ReplyContext, complete_reply, finished_text, read_batches
from .render.tool_calls import SplitReply
from .render.usage import usage
from .sse.events import ModelSlug, ReasoningDelta
from .structured_output import FormatMismatch, OutputFormat
from .translate.chat_request import ChatMessage, ChatRequest

log = logging.getLogger(__name__)

ATTEMPTS = 2  # the reply and one retry: each is a new web conversation


@dataclasses.dataclass
class Turn:
    """One upstream conversation of a request: the open reply, how it is rendered, and what to do
    when it has been read (close it, record it, hide the conversation)."""

    opened: OpenReply
    context: ReplyContext
    finish: Callable[[], None]


OpenTurn = Callable[[ChatRequest], Turn]


def invalid_output(reason: str, param: str = "response_format", reply: str = "") -> UpstreamError:
    """Both replies missed the format (``param``: the request field that asked for it; the
    Responses API's is text.format). 502: the upstream model gave an answer we cannot pass on;
    x-should-retry false, since the SDKs' automatic retries would each cost two more conversations.
    The model's last reply is part of the message: what it said is never silently dropped."""
    message = f"The model's reply did not match the requested {param}, also after one retry: {reason}."
    if reply:
        message += f" The model's last reply was: {reply}"
    return UpstreamError(502, message, code="invalid_json_output", param=param,
                         headers={"x-should-retry": "false"})


def retry_request(request: ChatRequest, bad_reply: str, reason: str) -> ChatRequest:
    """The retry's turn: the whole history again, the bad reply, and what was wrong with it."""
    output = _format_of(request)
    correction = (ChatMessage(role="assistant", parts=(bad_reply,)),
                  ChatMessage(role="user", parts=(output.correction(reason),)))
    return dataclasses.replace(request, messages=request.messages + correction)


def complete_structured(request: ChatRequest, first: Turn, open_turn: OpenTurn, deadline: float) -> dict:
    """The chat.completion whose content is the checked JSON (or, tools offered, that calls them);
    ApiError otherwise. ``deadline`` (time.monotonic()) bounds both turns together."""
    output = _format_of(request)
    turn, spent, reply, reason = first, None, "", ""
    for attempt in range(ATTEMPTS):
        if attempt:
            turn = _open_retry(open_turn, request, first, reply, reason)
        completion = _complete(turn, deadline)
        if spent is not None:  # both conversations were spent
            completion["usage"] = _sum_usage(spent, completion["usage"])
        if completion["choices"][0]["finish_reason"] in ("tool_calls", "function_call"):
            return completion  # a turn that calls tools: the format is for the answer that follows
        reply = _content(completion)
        checked, reason = _check(output, reply)
        if checked is not None:
            return _with_content(completion, checked)
        spent = completion["usage"]
    raise invalid_output(reason, reply=reply)


def stream_structured(request: ChatRequest, first: Turn, open_turn: OpenTurn) -> Iterator[bytes]:
    """The SSE body: role chunk, thinking and keep-alives while the reply is read, then the checked
    JSON (or the calls, or the error), finish, usage when asked, [DONE]. Each turn is finished here."""
    output = _format_of(request)
    writes = _Writes(first.context.factory, first.context.keep_alive_interval, first.context.tool_calls is not None)
    read: List[Tuple[ReplyContext, str]] = []  # every turn read, with its text (for usage)
    turn, checked, calls, error, text, reason = first, None, None, None, "", ""
    try:
        for attempt in range(ATTEMPTS):
            if attempt:
                turn = _open_retry(open_turn, request, first, text, reason)
            text = yield from _stream_turn(turn, writes)
            read.append((turn.context, text))
            calls = _tool_calls(turn.context, text)
            if calls is not None:
                break
            checked, reason = _check(output, text)
            if checked is not None:
                break
        else:
            raise invalid_output(reason, reply=text)
    except ClientGone:
        raise
    except Exception as exc:  # a bug too must end the stream with an error frame, finish and [DONE]
        error = stream_failure(exc, log, "the structured reply")
    yield writes.take(list(_tail(turn.context, _Answer(checked, calls, error), read)))


def _format_of(request: ChatRequest) -> OutputFormat:
    if request.output_format is None:
        raise ValueError("a structured reply needs the request's output_format")
    return request.output_format


def _check(output: OutputFormat, text: str) -> Tuple[Optional[str], str]:
    """(the JSON to send, "") or (None, why the text does not fit)."""
    try:
        return output.check(text), ""
    except FormatMismatch as mismatch:
        return None, mismatch.reason


def _open_retry(open_turn: OpenTurn, request: ChatRequest, first: Turn, bad_reply: str, reason: str) -> Turn:
    log.info("structured output: the reply did not match (%s); one retry", reason)
    retry = open_turn(retry_request(request, bad_reply, reason))
    # One completion for the client: the retry's chunks keep the first turn's id and created.
    retry.context.factory = first.context.factory
    return retry


def _complete(turn: Turn, deadline: float) -> dict:
    try:
        return complete_reply(turn.opened, turn.context, deadline=deadline)
    finally:
        turn.finish()


def _content(completion: dict) -> str:
    return completion["choices"][0]["message"]["content"] or ""


def _tool_calls(context: ReplyContext, text: str) -> Optional[SplitReply]:
    """With tools offered, a reply that calls them is passed on as calls, unchecked: the format is
    for the answer that follows them. None: no calls (or no tools)."""
    if context.tool_calls is None:
        return None
    split = context.tool_calls.split(text)
    return split if split.calls else None


def _with_content(completion: dict, content: str) -> dict:
    completion["choices"][0]["message"]["content"] = content
    return completion


def _sum_usage(first: dict, second: dict) -> dict:
    return {key: first[key] + second[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")}


class _Writes:
    """The role chunk goes with the first write; keep-alives when nothing was written for a while."""

    def __init__(self, factory: ChunkFactory, keep_alive_interval: float, tools: bool = False) -> None:
        self.factory = factory
        self.keep_alive_interval = keep_alive_interval
        self.tools = tools  # tools offered: the reply may be calls only (a null content, chunks.py)
        self.last = time.monotonic()
        self.role_sent = False

    def take(self, chunks: List[bytes]) -> bytes:
        if not self.role_sent:
            chunks.insert(0, self.factory.role(self.tools))  # made now: after the events that name the model
            self.role_sent = True
        self.last = time.monotonic()
        return b"".join(chunks)

    def idle(self) -> Optional[bytes]:
        if time.monotonic() - self.last >= self.keep_alive_interval:
            return self.take([KEEP_ALIVE])
        return None


def _stream_turn(turn: Turn, writes: _Writes) -> Generator[bytes, None, str]:
    """Reads one turn to its end, yielding its thinking as it comes (and keep-alives); returns its
    text, or raises ApiError as a non-stream reply would. The turn is finished either way."""
    context = turn.context
    try:
        for batch in read_batches(turn.opened, context, writes.idle):
            if not isinstance(batch, list):  # an idle tick: a keep-alive or nothing
                if batch:
                    yield batch
                continue
            chunks = _held_back(context, batch)
            if chunks or not writes.role_sent:
                yield writes.take(chunks)
            else:  # text that is held is no write: a reply that trickles in needs keep-alives too
                keep_alive = writes.idle()
                if keep_alive:
                    yield keep_alive
            if context.renderer.state.failure is not None:
                break
        return finished_text(context)
    finally:
        turn.finish()


def _held_back(context: ReplyContext, batch: list) -> List[bytes]:
    """Renders a batch of events: thinking becomes chunks, the text stays in the renderer."""
    chunks: List[bytes] = []
    for event in batch:
        if isinstance(event, ReasoningDelta):
            chunks += context.factory.reasoning(context.renderer.reasoning(event))
        elif isinstance(event, ModelSlug):
            context.factory.answered_by(event.slug)
        elif event is not None:
            context.renderer.render(event)
        if context.renderer.state.failure is not None:
            break
    return chunks


@dataclasses.dataclass(frozen=True)
class _Answer:
    """How a structured stream ends: the checked JSON, the tool calls made, or the error."""

    checked: Optional[str]
    calls: Optional[SplitReply]
    error: Optional[ApiError]


def _tail(context: ReplyContext, answer: _Answer, read: List[Tuple[ReplyContext, str]]) -> Iterator[bytes]:
    """The JSON (or the calls), or a visible note and an error frame; then finish, usage when
    asked, [DONE]."""
    factory = context.factory
    finish_reason = context.renderer.state.finish_reason
    if answer.error is not None:
        yield from factory.content(f"[error: {answer.error.message}]")
        yield factory.error(answer.error.body())
    elif answer.calls is not None and context.tool_calls is not None:
        yield from factory.content(answer.calls.content or "")
        for index, call in enumerate(answer.calls.calls):
            yield from context.tool_calls.call_chunks(index, call, factory)
        finish_reason = context.tool_calls.finish_reason(finish_reason)
    elif answer.checked is not None:
        yield from factory.content(answer.checked)
    yield factory.finish(finish_reason)
    if context.include_usage:
        counts = [usage(turn.prompt_tokens(), text, turn.encoding) for turn, text in read]
        total = counts[0] if counts else usage(context.prompt_tokens(), "", context.encoding)
        for more in counts[1:]:
            total = _sum_usage(total, more)
        yield factory.usage(total)
    yield DONE
