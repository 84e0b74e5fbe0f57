"""Rate limits of our own, checked before an upstream call is spent.

xyhelper allows about 30 requests a minute per token, and every request here is a real web
conversation, so each upstream token gets a sliding window in the shared store (all workers and
instances count together). A request over the limit waits briefly when a slot frees soon, else is
answered 429 with Retry-After. An upstream 429 (``model_cap_exceeded`` with ``clears_in``) starts a
cool-down for that token and model, so nobody spends calls on a cap that is known to be closed.
While Redis is away (or does not answer within its timeout) the worker's in-process store counts
instead (failover_store.py): the limit then holds per worker, and no request fails for want of Redis.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Optional

from .auth.tokens import Credentials
from .errors import ApiError, retry_headers
from .redact import fingerprint

log = logging.getLogger(__name__)

WINDOW = 60.0


def limit_key(credentials: Credentials) -> str:
    """Limits follow the upstream account: the key plus the Team account it speaks for."""
    return f"{credentials.key},{credentials.account_id or ''}"


def rate_limited(message: str, seconds: float, code: str) -> ApiError:
    return ApiError(429, message, "rate_limit_exceeded", code=code, headers=retry_headers(seconds))


class RateLimiter:
    def __init__(self, store, per_minute: int, max_wait: float, window: float = WINDOW) -> None:
        self.store = store
        self.per_minute = per_minute  # requests per ``window`` (a minute outside tests)
        self.max_wait = max_wait
        self.window = window

    def acquire(self, token_key: str, model_slug: str) -> None:
        """Take a slot for one upstream call with this token, or raise 429."""
        name = fingerprint(token_key)
        deadline = time.monotonic() + self.max_wait
        while True:
            # One store round trip: the (token, model) cool-down, then a slot of the window.
            wait, cooling = self.store.take_slot(f"rate:{name}", self.per_minute, self.window,
                                                 blocker=f"cool:{name}:{model_slug}")
            if cooling:
                raise rate_limited(f"The upstream limit for {model_slug} on this account clears in "
                                   f"{math.ceil(cooling)} s.", cooling, "model_cap_exceeded")
            if wait <= 0:
                return
            if time.monotonic() + wait > deadline:
                raise rate_limited(f"More than {self.per_minute} requests a minute with this token; "
                                   f"try again in {math.ceil(wait)} s.", wait, "rate_limit_exceeded")
            time.sleep(wait + 0.01)  # a slot frees soon: queue briefly rather than refuse

    def cool_down(self, token_key: str, model_slug: str, seconds: Optional[float]) -> None:
        """Remember an upstream 429 for this token and model."""
        if seconds and seconds > 0:
            self.store.set_json(f"cool:{fingerprint(token_key)}:{model_slug}", True, ttl=seconds)
            log.info("upstream limit on %s: cooling down for %.0f s", model_slug, seconds)
