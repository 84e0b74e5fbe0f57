"""An open upstream reply as a stream of typed events that can be waited on with a timeout.

The body is read by one pump (a greenlet under gevent workers, a thread under gthread), which runs
the SSE decoder and the interpreter and queues typed events. The request side waits on the queue
with a short timeout, so it can send keep-alives while the upstream is silent and notice a client
that went away; closing the reply closes the upstream socket, which ends the pump at once.
"""
from __future__ import annotations

import logging
import queue
import socket
import threading
from typing import Callable, Iterator, List, Optional, Union

import requests

from ..errors import ApiError, UpstreamError
from ..sse.decoder import SSEDecoder, SSEFormatError
from ..sse.events import ActionConfirmation, Event, UpstreamFailure
from ..sse.interpret import ReplyInterpreter
from .client import wrap_transport_errors

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
MAX_FOLLOW_UPS = 3  # a GPT that keeps asking to confirm must not loop forever
_END = object()

FollowUp = Callable[[ActionConfirmation], requests.Response]


class Waiting:
    """Returned by ReplyStream.next_events when nothing arrived within the timeout."""


WAITING = Waiting()


class ReplyStream:
    """``open_response`` makes the upstream call; it runs on the pump too, so the request side can
    answer headers by its deadline even when the upstream is slow to answer at all.

    ``follow_up`` (GPT replies only) answers an action's confirmation request: the body is read up to
    that request and the follow-up's body continues the same reply, as the web page does on "Always allow".
    """

    def __init__(self, open_response: Callable[[], requests.Response], follow_up: Optional[FollowUp] = None) -> None:
        self._open_response = open_response
        self._follow_up = follow_up
        self._follow_ups_left = MAX_FOLLOW_UPS if follow_up is not None else 0
        self._response: Optional[requests.Response] = None
        # Only the pump closes (and so releases to the pool) the response; close() from the request
        # side just wakes the pump. The lock makes "the pump still owns it" and the wake-up atomic, so
        # a connection is never released twice nor shut down after another request got it.
        self._owner = threading.Lock()
        self._queue: "queue.Queue[object]" = queue.Queue()
        self._closed = threading.Event()
        self._pump = threading.Thread(target=self._run, name="upstream-pump", daemon=True)
        self._pump.start()

    def next_events(self, timeout: float) -> Union[List[Event], Waiting, None]:
        """Events that arrived, WAITING on timeout, None once the body has ended.

        Raises ApiError (mostly UpstreamError) when the call or reading the body failed (timeout, reset, bad framing).
        """
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return WAITING
        if item is _END:
            self._queue.put(_END)  # stay ended for later calls
            return None
        if isinstance(item, ApiError):
            self._queue.put(_END)
            raise item
        return item  # type: ignore[return-value]

    def events(self, timeout: float) -> Iterator[Union[Event, Waiting]]:
        while True:
            batch = self.next_events(timeout)
            if batch is None:
                return
            if batch is WAITING:
                yield WAITING
                continue
            yield from batch  # type: ignore[misc]

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with self._owner:
            if self._response is not None:
                _wake_reader(self._response)

    def _own(self, response: Optional[requests.Response]) -> None:
        """Make ``response`` the one being read (None: none), closing the previous one."""
        with self._owner:
            previous, self._response = self._response, response
        if previous is not None:
            previous.close()

    def _run(self) -> None:
        interpreter = ReplyInterpreter()
        try:
            if self._closed.is_set():
                return  # the client left before the call was even made
            self._own(self._open_response())
            while not self._closed.is_set():  # closed while a call was being made: stop
                confirmation = self._read(self._response, interpreter)
                if confirmation is None or self._follow_up is None or self._closed.is_set():
                    return  # no follow-up conversation for a client that has gone
                self._follow_ups_left -= 1
                self._own(None)
                self._own(self._follow_up(confirmation))
        except ApiError as exc:  # upstream failures, and a refresh refused after an upstream 401
            if not self._closed.is_set():
                self._queue.put(exc)
        except SSEFormatError as exc:
            self._queue.put([UpstreamFailure(f"the upstream stream was malformed: {exc}", "bad_stream")])
        except Exception:  # a bug must end this reply with an error, never hang it
            if not self._closed.is_set():  # after close() the reader is expected to fail
                log.exception("reading the upstream reply failed")
                self._queue.put(UpstreamError(502, "Reading the upstream reply failed.", code="upstream_error"))
        finally:
            self._own(None)
            self._queue.put(_END)

    def _read(self, response: requests.Response, interpreter: ReplyInterpreter) -> Optional[ActionConfirmation]:
        """Pump one body; returns early with an action confirmation that a follow-up will answer."""
        decoder = SSEDecoder()
        for chunk in _body_chunks(response):
            confirmation = self._deliver(interpreter, decoder.feed(chunk))
            if confirmation is not None:
                return confirmation
        return self._deliver(interpreter, decoder.finish())

    def _deliver(self, interpreter: ReplyInterpreter, sse_events: list) -> Optional[ActionConfirmation]:
        events: List[Event] = []
        confirmation: Optional[ActionConfirmation] = None
        for sse in sse_events:
            events.extend(interpreter.feed(sse))
            confirmation = self._answerable(events)
            if confirmation is not None:
                break  # the rest of this body ([DONE]) is replaced by the follow-up's
        if events:
            self._queue.put(events)
        return confirmation

    def _answerable(self, events: List[Event]) -> Optional[ActionConfirmation]:
        if self._follow_ups_left <= 0:
            return None
        return next((event for event in events if isinstance(event, ActionConfirmation)), None)


def _wake_reader(response: requests.Response) -> None:
    """Make a read the pump may be blocked in return now. Closing the response from here would race
    the pump (under gevent: "reentrant call" in the buffered reader; under threads: the connection
    released to the pool twice); shutting the socket down ends the read, and the pump, which owns
    the response, closes it. A half-read connection is closed, never reused."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives: read1 returns whatever one chunk / one recv gave, without waiting
    for a full buffer (a plain read(n) would hold back a slow stream until n bytes came)."""
    raw = response.raw
    while True:
        try:
            with wrap_transport_errors("reading the reply"):
                chunk = raw.read1(READ_SIZE, decode_content=True)
        except UpstreamError as exc:
            if exc.status == 504:
                raise
            raise UpstreamError(502, "The upstream connection broke in the middle of the reply.",
                                code="upstream_disconnected") from exc
        if not chunk:
            return
        yield chunk
