"""The store a worker uses: Redis while it answers, the in-process store while it does not.

A worker must not be stuck on its own store because Redis was briefly away when it started, nor
stall because Redis stopped answering. So every call goes to Redis while Redis is up; a call that
fails to reach it (refused, reset, or no answer within ``redis.timeout``) marks Redis down and is
served by a fresh in-process store, as are the calls after it. While Redis is down, one caller at a
time checks it again (a PING, bounded like any call) at most every ``retry_every`` seconds; once it
answers, tokens, locks and limits are shared again. Each change is logged once, not per call. The
check runs in the caller that found it due, which pays for it: next to nothing when Redis refuses
connections, ``redis.timeout`` when it accepts and never answers (no thread of its own to manage).

The in-process store starts empty at each outage: what it held during an earlier one may be stale.
An error that is Redis answering (a script error, a wrong type) is not an outage: that one call is
served in-process and a warning logged at most every 30 s.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Tuple

import redis

from .settings import RedisSettings
from .store import MemoryStore, RedisStore, redis_client

log = logging.getLogger(__name__)

RETRY_EVERY = 1.0
WARN_EVERY = 30.0

# Redis did not answer at all: switch to the in-process store. Other RedisErrors are answers.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


class FailoverStore:
    """The store interface (see store.MemoryStore), served by ``shared`` or in-process."""

    def __init__(self, shared: RedisStore, where: str, retry_every: float = RETRY_EVERY) -> None:
        self.shared = shared
        self.where = where  # host:port, for the log
        self.retry_every = retry_every
        self._local = MemoryStore()
        self._up = False
        self._ever_up = False
        self._next_check = 0.0
        self._state = threading.Lock()  # guards the switch and who checks next
        self._last_warning = 0.0

    @property
    def kind(self) -> str:
        return "redis" if self._up else "memory"

    def start(self) -> "FailoverStore":
        """Check Redis once now (at worker start) and say which store serves."""
        if self._check(announce=False):
            log.info("shared state in redis at %s", self.where)
        else:
            self._next_check = time.monotonic() + self.retry_every
            log.warning("redis at %s is not reachable: using an in-process store (tokens and limits are not "
                        "shared between workers or instances); trying again every %.0f s",
                        self.where, self.retry_every)
        return self

    # The store interface: each call on Redis when it is up, else in-process.

    def get_json(self, key: str) -> Any:
        return self._either(lambda store: store.get_json(key))

    def set_json(self, key: str, value: Any, ttl: Optional[float] = None) -> None:
        self._either(lambda store: store.set_json(key, value, ttl))

    def delete(self, key: str) -> None:
        self._either(lambda store: store.delete(key))

    def claim(self, key: str, ttl: float) -> bool:
        return self._either(lambda store: store.claim(key, ttl))

    def add_to_set(self, key: str, member: str) -> None:
        self._either(lambda store: store.add_to_set(key, member))

    def members(self, key: str) -> list:
        return self._either(lambda store: store.members(key))

    def increment(self, key: str) -> int:
        return self._either(lambda store: store.increment(key))

    def take_slot(self, key: str, limit: int, window: float, blocker: Optional[str] = None) -> Tuple[float, float]:
        return self._either(lambda store: store.take_slot(key, limit, window, blocker))

    def remaining_ttl(self, key: str) -> Optional[float]:
        return self._either(lambda store: store.remaining_ttl(key))

    @contextmanager
    def lock(self, name: str, ttl: float, wait: float) -> Iterator[None]:
        """Across workers and instances while Redis is up; within this worker while it is not."""
        shared, held = self._on_shared(lambda store: store.acquire(name, ttl, wait))
        if not shared:
            with self._local.lock(name, ttl, wait):
                yield
            return
        try:
            yield
        finally:
            self._on_shared(lambda store: store.release(held))  # else it expires after ttl

    def ping(self) -> bool:
        """For /readyz: Redis answers now. Also True while it has not answered since the worker
        started: running in-process then is a known, logged state (the start-up warning)."""
        return self._check() or not self._ever_up

    # Which store serves.

    def _either(self, call: Callable[[Any], Any]) -> Any:
        shared, value = self._on_shared(call)
        return value if shared else call(self._local)

    def _on_shared(self, call: Callable[[RedisStore], Any]) -> Tuple[bool, Any]:
        """(True, what ``call`` returned on Redis), or (False, None) when Redis is not to be used now."""
        if self._up or self._check_due():
            try:
                return True, call(self.shared)
            except UNREACHABLE as exc:
                self._went_down(exc)
            except redis.RedisError as exc:
                self._warn(exc)
        return False, None

    def _check_due(self) -> bool:
        """While down: whether Redis answers again, checked by one caller at most every retry_every s;
        the others go on in-process meanwhile."""
        if time.monotonic() < self._next_check or not self._state.acquire(blocking=False):
            return False
        try:
            due = time.monotonic() >= self._next_check  # not taken by a caller just before us
            if due:
                self._next_check = time.monotonic() + self.retry_every
        finally:
            self._state.release()
        return due and self._check()

    def _check(self, announce: bool = True) -> bool:
        if not self.shared.ping():
            if self._up:
                self._went_down(redis.ConnectionError("no answer to PING"))
            return False
        with self._state:
            came_back, self._up, self._ever_up = not self._up, True, True
        if came_back and announce:
            log.warning("redis at %s answers again: shared state is back in redis", self.where)
        return True

    def _went_down(self, exc: Exception) -> None:
        with self._state:
            if not self._up:
                return
            self._up = False
            self._local = MemoryStore()
            self._next_check = time.monotonic() + self.retry_every
        log.warning("redis at %s stopped answering (%s): using an in-process store until it answers again",
                    self.where, exc.__class__.__name__)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > WARN_EVERY:
            self._last_warning = now
            log.warning("redis refused a call (%s: %s); served in-process", exc.__class__.__name__, exc)


def open_store(settings: RedisSettings) -> FailoverStore:
    """The worker's store, on Redis if it answers now (checked again later if not)."""
    return FailoverStore(RedisStore(redis_client(settings)), f"{settings.host}:{settings.port} db {settings.db}").start()
