"""An open upstream reply as a stream of typed events that can be waited on with a timeout.

The request that streams the reply reads it itself: ``next_events(timeout)`` reads the upstream
socket with that timeout, runs the SSE decoder and the interpreter, and returns typed events, or
WAITING when the upstream was silent, so the caller can send keep-alives and notice a client that
went away between reads. The call itself (the POST until the headers come) is resumable steps
(``steps.py``) driven by the same ticks, so no other thread is involved: one reader, one thread.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, Iterator, List, Optional, Union

from ..errors import ApiError, ClientGone, UpstreamError, upstream_timeout
from ..sse.decoder import SSEDecoder, SSEFormatError
from ..sse.events import ActionConfirmation, ConversationId, Event, HandOff as HandOffEvent, ImagePointer, ModelSlug
from ..sse.events import StreamEnd, TextDelta, UpstreamFailure
from ..sse.interpret import ReplyInterpreter
from .body import UpstreamBody
from .handoff import SILENCE_LIMIT, HandOff
from .ws_answer import WebSocketAnswer
from .steps import Deadline, ResumableCall, Steps

log = logging.getLogger(__name__)

MAX_FOLLOW_UPS = 3  # a GPT that keeps asking to confirm must not loop forever
DEFAULT_READ_TIMEOUT = 300.0

_METADATA = (ConversationId, ModelSlug, HandOffEvent, StreamEnd)  # what a handed-off HTTP body holds

OpenSteps = Callable[[Deadline], Steps[UpstreamBody]]
FollowUp = Callable[[ActionConfirmation, Deadline], Steps[UpstreamBody]]


class Waiting:
    """Returned by ReplyStream.next_events when nothing arrived within the timeout."""


WAITING = Waiting()


def watched_batches(batches: Iterable[Union[List[Event], Waiting]], client_gone: Callable[[], bool],
                    deadline: float, what: str) -> Iterator[List[Event]]:
    """The batches that hold events, for a reader that sends nothing meanwhile (an image turn, the
    speech conversation): on a silence the client is asked (ClientGone when it left), and after
    every read the ``deadline`` (a time.monotonic() value) is checked, however busy the stream is."""
    for batch in batches:
        if isinstance(batch, Waiting):
            if client_gone():
                raise ClientGone()
        else:
            yield batch
        if time.monotonic() > deadline:
            raise upstream_timeout(what)


class ReplyStream:
    """``open_response`` makes the steps of the upstream call (resumed at each read, so the request
    can answer headers by its deadline even when the upstream is slow to answer at all). A silence longer than
    ``read_timeout`` once the body has started is a 504.

    ``follow_up`` (GPT replies only) answers an action's confirmation request: the body is read up to
    that request and the follow-up's body continues the same reply, as the web page does on "Always allow".
    """

    def __init__(self, open_response: OpenSteps, follow_up: Optional[FollowUp] = None,
                 read_timeout: float = DEFAULT_READ_TIMEOUT, hand_off: Optional[HandOff] = None) -> None:
        self._follow_up = follow_up
        self._follow_ups_left = MAX_FOLLOW_UPS if follow_up is not None else 0
        self._read_timeout = read_timeout
        self._interpreter = ReplyInterpreter()
        self._call: Optional[ResumableCall[UpstreamBody]] = ResumableCall(open_response)
        self._body: Optional[UpstreamBody] = None
        self._decoder: Optional[SSEDecoder] = None  # a fresh one for each body (_answered)
        self._last_data = time.monotonic()
        self._ended = False
        self._hand_off = hand_off  # None: a reply moved to a WebSocket is an error (voice, tests)
        self._topic: Optional[HandOffEvent] = None  # the WebSocket topic the upstream named or implied
        self._shown = False  # text or an image reached the client: the HTTP body was the reply
        self._failed = False  # the upstream reported a failure: nothing to follow
        self._quiet = True  # nothing but metadata so far (no message of any kind)
        self.accepted = False  # the upstream answered the POST with a reply: the turn exists upstream

    def next_events(self, timeout: float) -> Union[List[Event], Waiting, None]:
        """Events that arrived, WAITING on timeout, None once the body has ended.

        Raises ApiError (mostly UpstreamError) when the call or reading the body failed (timeout, reset,
        bad framing); the reply is then ended.
        """
        if self._ended:
            return None
        try:
            return self._next(time.monotonic() + timeout)
        except ApiError:
            self.close()
            raise
        except Exception:  # a bug must end this reply with an error, never hang it
            log.exception("reading the upstream reply failed")
            self.close()
            raise UpstreamError(502, "Reading the upstream reply failed.", code="upstream_error")

    def batches(self, timeout: float) -> Iterator[Union[List[Event], Waiting]]:
        """``next_events`` until the end: the events of each read together, WAITING on a silence."""
        while True:
            batch = self.next_events(timeout)
            if batch is None:
                return
            yield batch

    def close(self) -> None:
        """Stop: an answer still coming is closed when it comes; a body read to its end gives its
        connection back to the pool."""
        self._ended = True
        call, self._call = self._call, None
        if call is not None:
            call.abandon()
        body, self._body = self._body, None
        if body is not None:
            body.close(settle=self._interpreter.said_done)  # nothing after [DONE] is wanted

    def _next(self, deadline: float) -> Union[List[Event], Waiting, None]:
        while not self._ended:
            remaining = deadline - time.monotonic()
            if self._body is None and not self._answered(deadline):
                return WAITING
            data = self._body.read(max(remaining, 0.0))
            if data is None:
                self._check_silence()
                return WAITING
            events = self._events(data)
            if events:
                return events
            if remaining <= 0:
                return WAITING
        return None

    def _answered(self, deadline: float) -> bool:
        """Wait for the call's headers (or the WebSocket it led to) until ``deadline``; False if
        they are not there yet."""
        while True:
            body = self._call.wait(max(deadline - time.monotonic(), 0.0))
            if body is None:
                return False
            self.accepted = True
            if not isinstance(body, WebSocketAnswer):
                break
            self._call = self._answer_socket(body)  # the dial: more steps, on the same ticks
        self._call = None
        self._body = body
        self._decoder = SSEDecoder()
        self._last_data = time.monotonic()
        return True

    def _check_silence(self) -> None:
        if time.monotonic() - self._last_data > self._read_timeout:
            raise upstream_timeout("reading the reply")

    def _events(self, data: bytes) -> List[Event]:
        """Typed events of one read (b"": the end of this body)."""
        self._last_data = time.monotonic()
        try:
            sse_events = self._decoder.feed(data) if data else self._decoder.finish()
        except SSEFormatError as exc:
            self.close()
            return [UpstreamFailure(f"the upstream stream was malformed: {exc}", "bad_stream")]
        events, confirmation = self._interpret(sse_events)
        self._note(events)
        if confirmation is not None:
            self._continue_with_follow_up(confirmation)
        elif self._hand_off_due(events):
            events = [event for event in events if not isinstance(event, StreamEnd)]
            self._follow_topic()
        elif not data:
            self.close()
        return events

    def _note(self, events: List[Event]) -> None:
        for event in events:
            if isinstance(event, HandOffEvent) and (self._topic is None or self._topic.derived):
                self._topic = event
            elif isinstance(event, (TextDelta, ImagePointer)):
                self._shown = True
            elif isinstance(event, UpstreamFailure):
                self._failed = True
            if not isinstance(event, _METADATA):
                self._quiet = False

    def _hand_off_due(self, events: List[Event]) -> bool:
        """The HTTP body said [DONE] after naming a topic and showing nothing: the reply is on the
        WebSocket (spec 2026 3.6; [A] switches on exactly this). Followed once. A topic only derived
        from the turn id is followed only when the body said nothing but metadata: a turn whose
        messages came (an image turn whose result comes later) must not wait on a topic that may
        never speak."""
        return (self._hand_off is not None and self._topic is not None and not (self._shown or self._failed)
                and (self._quiet or not self._topic.derived)
                and any(isinstance(event, StreamEnd) for event in events))

    def _follow_topic(self) -> None:
        """Read the rest from the topic, through the same decoder state (a fresh one), interpreter,
        timeouts and ticks. Opening it is a call in steps, like the POST's (its lookup blocks for at
        most the connect and read timeouts; a client that left meanwhile is noticed before the dial)."""
        hand_off, self._hand_off = self._hand_off, None
        body, self._body = self._body, None
        if body is not None:
            body.close(settle=True)  # [DONE] came: the connection can be kept
        self._interpreter.said_done = False
        topic_id = self._topic.topic_id
        self._call = ResumableCall(lambda deadline: hand_off.follow_topic(topic_id, deadline))
        self._read_timeout = min(self._read_timeout, SILENCE_LIMIT)

    def _answer_socket(self, answer: WebSocketAnswer) -> ResumableCall:
        """2024: the POST answered JSON naming a WebSocket; its frames are the reply, once dialed."""
        hand_off, self._hand_off = self._hand_off, None
        if hand_off is None:
            raise UpstreamError(502, "The upstream moved the reply to a WebSocket, which this call does not "
                                     "follow.", 200, code="upstream_not_a_stream")
        self._read_timeout = min(self._read_timeout, SILENCE_LIMIT)
        return ResumableCall(lambda deadline: hand_off.follow_answer(answer, deadline))

    def _interpret(self, sse_events: list) -> tuple:
        events: List[Event] = []
        for sse in sse_events:
            events.extend(self._interpreter.feed(sse))
            confirmation = self._answerable(events)
            if confirmation is not None:
                return events, confirmation  # the rest of this body ([DONE]) is replaced by the follow-up's
        return events, None

    def _continue_with_follow_up(self, confirmation: ActionConfirmation) -> None:
        self._follow_ups_left -= 1
        body, self._body = self._body, None
        if body is not None:
            body.close()
        follow_up = self._follow_up
        self._call = ResumableCall(lambda deadline: follow_up(confirmation, deadline))

    def _answerable(self, events: List[Event]) -> Optional[ActionConfirmation]:
        if self._follow_ups_left <= 0:
            return None
        return next((event for event in events if isinstance(event, ActionConfirmation)), None)
