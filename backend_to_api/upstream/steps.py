"""Upstream calls that wait without a thread of their own.

The request that makes the conversation call must keep ticking while the upstream is slow to
answer at all: keep-alives, a client that left, the header deadline. So the call is written as a
generator ("steps") that runs on the request's own thread (greenlet) and yields whenever it has
used up the time its caller gave it; ``ResumableCall.wait(timeout)`` resumes it with more time.
Between two waits the call's whole state (a half-read head, the retry after a 401) sits in the
suspended generator, and ``abandon`` closes it there, which closes its socket.

Before, each call ran on a helper thread (a greenlet under gevent) that the request waited on:
one more OS thread per chat under gthread workers, and a spawn, an event and a lock per chat
under gevent. Now none does, the call through an outbound proxy included (``http1.py`` talks to
the proxy itself). The socket operations themselves (connect, TLS handshake, recv) are in
``socket_steps.py``.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Generator, Generic, Optional, TypeVar

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
