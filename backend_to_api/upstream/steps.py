"""Upstream calls that wait without a thread of their own.

The request that makes the conversation call must keep ticking while the upstream is slow to
answer at all: keep-alives, a client that left, the header deadline. So the call is written as a
generator ("steps") that runs on the request's own thread (greenlet) and yields whenever it has
used up the time its caller gave it; ``ResumableCall.wait(timeout)`` resumes it with more time.
Between two waits the call's whole state (a half-read head, the retry after a 401) sits in the
suspended generator, and ``abandon`` closes it there, which closes its socket.

Before, each call ran on a helper thread (a greenlet under gevent) that the request waited on:
one more OS thread per chat under gthread workers, and a spawn, an event and a lock per chat
under gevent. Only a call through an outbound proxy (requests' proxy handling, which cannot stop
half-way through a head) still runs on a thread: ``in_thread``. The socket operations themselves
(connect, TLS handshake, recv) are in ``socket_steps.py``.
"""
from __future__ import annotations

import _thread
import logging
import threading
import time
from typing import Any, Callable, Generator, Generic, Optional, TypeVar

from ..errors import ApiError, UpstreamError

log = logging.getLogger(__name__)

T = TypeVar("T")
Steps = Generator[None, None, T]  # yields: out of time, resume me; returns: the answer


class Deadline:
    """Until when the running steps may block; ``ResumableCall`` moves it before each resume."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = 0.0

    def remaining(self) -> float:
        return self.at - time.monotonic()


class ResumableCall(Generic[T]):
    """Drives the steps that ``start(deadline)`` makes, a slice of time per ``wait``."""

    def __init__(self, start: Callable[[Deadline], Steps[T]]) -> None:
        self._deadline = Deadline()
        self._steps = start(self._deadline)

    def wait(self, timeout: float) -> Optional[T]:
        """The answer, or None while the call is still going after ``timeout``. Raises the
        ApiError the call raised; any other exception (a bug) is logged and answered as a 502."""
        self._deadline.at = time.monotonic() + timeout
        try:
            next(self._steps)
        except StopIteration as done:
            return done.value
        except ApiError:
            raise
        except Exception as exc:
            log.exception("the upstream call failed")
            raise UpstreamError(502, "The upstream call failed.", code="upstream_error") from exc
        return None

    def abandon(self) -> None:
        """Nobody will read the answer: GeneratorExit at the step that waits closes what it holds."""
        self._steps.close()


def in_thread(make: Callable[[], T], close: Callable[[T], Any], deadline: Deadline) -> Steps[T]:
    """``make()`` on a thread of its own (a greenlet under gevent), for blocking calls that cannot
    be resumed. Its exception is raised here; an answer that comes after the steps were abandoned
    is closed with ``close``."""
    call = _ThreadCall(make, close)
    try:
        while not call.done.wait(max(deadline.remaining(), 0.0)):
            yield
    except GeneratorExit:
        call.abandon()
        raise
    if call.error is not None:
        raise call.error
    return call.value


class _ThreadCall(Generic[T]):
    def __init__(self, make: Callable[[], T], close: Callable[[T], Any]) -> None:
        self._make, self._close = make, close
        self.done = threading.Event()
        self._lock = threading.Lock()  # "abandoned" and "answer kept" are decided atomically
        self.value: Optional[T] = None
        self.error: Optional[BaseException] = None
        self._abandoned = False
        # The bare primitive (a greenlet under gevent's patching): threading.Thread's bookkeeping
        # and its wait for the start cost more than the call's own Python.
        _thread.start_new_thread(self._run, ())

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            value, self.value = self.value, None
        if value is not None:
            self._close(value)

    def _run(self) -> None:
        value: Optional[T] = None
        try:
            value = self._make()
        except Exception as exc:  # raised again by the steps that wait for it
            self.error = exc
        finally:
            with self._lock:
                keep = not self._abandoned
                if keep:
                    self.value = value
            if value is not None and not keep:
                self._close(value)
            self.done.set()
