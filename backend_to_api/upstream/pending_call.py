"""An upstream call made on a thread of its own (a greenlet under gevent workers), waited on with
a timeout: the request keeps ticking (keep-alives, a client that left, the header deadline) while
the upstream is slow to answer at all."""
from __future__ import annotations

import _thread
import logging
import threading
from typing import Callable, Optional

from ..errors import ApiError, UpstreamError
from .body import UpstreamBody

log = logging.getLogger(__name__)


class PendingCall:
    def __init__(self, make: Callable[[], UpstreamBody]) -> None:
        self._make = make
        self._done = threading.Event()
        self._lock = threading.Lock()     # "abandoned" and "answer kept" are decided atomically
        self._body: Optional[UpstreamBody] = None
        self._error: Optional[ApiError] = None
        self._abandoned = False
        # The bare primitive (a greenlet under gevent's patching): threading.Thread's bookkeeping and
        # its wait for the start cost more than the call's own Python for every chat.
        _thread.start_new_thread(self._run, ())

    def wait(self, timeout: float) -> Optional[UpstreamBody]:
        """The answered call, None while it is still going after ``timeout``; raises the ApiError
        the call raised (a bug in it is a 502)."""
        if not self._done.wait(timeout):
            return None
        if self._error is not None:
            raise self._error
        if self._body is None:
            raise UpstreamError(502, "The upstream call was interrupted.", code="upstream_error")
        return self._body

    def abandon(self) -> None:
        """Nobody will read this call's answer: close it now, or as soon as it comes."""
        with self._lock:
            self._abandoned = True
            body, self._body = self._body, None
        if body is not None:
            body.close()

    def _run(self) -> None:
        body: Optional[UpstreamBody] = None
        try:
            if not self._abandoned:  # else the client left before the call was even made
                body = self._make()
        except ApiError as exc:  # upstream failures, and a refresh refused after an upstream 401
            self._error = exc
        except Exception:
            log.exception("the upstream call failed")
            self._error = UpstreamError(502, "The upstream call failed.", code="upstream_error")
        finally:
            self._keep(body)
            self._done.set()

    def _keep(self, body: Optional[UpstreamBody]) -> None:
        with self._lock:
            keep = not self._abandoned
            if keep:
                self._body = body
        if body is not None and not keep:
            body.close()
