"""Runs a scenario as a WSGI response body: steps in, flushed SSE bytes out.

Every yielded piece is written and flushed by the server before the next is asked for (gevent's
pywsgi sends each as one HTTP chunk), so pauses here are real silences on the wire. When the
client goes away, the server's next write fails and it calls `close()`, which raises GeneratorExit
at the pending yield: that is when the stream record learns the client left.
"""
from __future__ import annotations

import errno
import time
from typing import Iterable, Iterator

from .directive import Directive
from .encodings import CumulativeEncoder, Frame
from .state import StreamRecord
from .steps import PING, Drop, KeepAlive, Pause
from .wire import pieces, render_frame


class DroppedOnPurpose(ConnectionResetError):
    """Raised out of the body to make the server abandon the response mid-chunk.

    gevent's pywsgi treats ECONNRESET as "client went away": it closes the socket quietly without
    the closing `0\\r\\n\\r\\n` chunk, so the client sees a truncated chunked body.
    """

    def __init__(self) -> None:
        super().__init__(errno.ECONNRESET, "emulator dropped the connection on purpose")


class ReplyStream:
    def __init__(self, steps: Iterable[object], encoder: CumulativeEncoder, directive: Directive,
                 record: StreamRecord) -> None:
        self._steps = steps
        self._encoder = encoder
        self._directive = directive
        self.record = record
        self._body: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        self._body = self._generate()
        return self._body

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
        self.record.end("client_closed")  # no-op unless the body never ran to its end

    def _generate(self) -> Iterator[bytes]:
        outcome = "error"
        try:
            if self._directive.first_delay > 0:
                time.sleep(self._directive.first_delay)
            yield from self._write(self._encoder.preamble())
            for step in self._steps:
                # One flat loop: a generator level less for every event of every stream.
                if isinstance(step, Pause):
                    time.sleep(step.seconds)
                elif isinstance(step, KeepAlive):
                    yield from self._keep_alive(step)
                elif isinstance(step, Drop):
                    outcome = "dropped"
                    raise DroppedOnPurpose()
                else:
                    yield from self._write(self._encoder.encode(step))
            outcome = "completed"
        except GeneratorExit:
            outcome = "client_closed"
            raise
        finally:
            self.record.end(outcome)

    def _keep_alive(self, step: KeepAlive) -> Iterator[bytes]:
        deadline = time.monotonic() + step.seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(step.every, left))
            yield from self._write((PING.lines,))

    def _write(self, frames: Iterable[Frame]) -> Iterator[bytes]:
        for frame in frames:
            yield from pieces(render_frame(frame, self._directive.crlf), self._directive.fragment)
            self.record.events_sent += 1
