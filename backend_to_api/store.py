"""The two stores behind one interface: Redis (shared) and an in-process one (this worker only).

Everything several gunicorn workers or instances must agree on (access tokens, refresh locks, GPTs
info, upload hashes, rate-limit state) goes through a store. Keys are namespaced, values are JSON
(never repr/eval, as the original did). Which of the two serves a call, and what a Redis failure
means, is failover_store.FailoverStore's business; RedisStore itself raises redis-py's errors.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import redis
from redis.backoff import NoBackoff
from redis.lock import Lock
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from .group_commit import GroupCommit, GroupCommitTimeout
from .script_line import ScriptLine
from .settings import RedisSettings

NAMESPACE = "b2a:"


class LockTimeout(Exception):
    """Another holder kept a lock longer than we were willing to wait."""


class MemoryStore:
    """The in-process fallback: correct within one process, not shared across workers."""

    kind = "memory"

    def __init__(self) -> None:
        self._values: Dict[str, Tuple[Any, Optional[float]]] = {}
        self._guard = threading.Lock()
        self._locks: Dict[str, threading.Lock] = {}
        self._slots: Dict[str, list] = {}

    def get_json(self, key: str) -> Any:
        with self._guard:
            value, expires = self._values.get(key, (None, None))
            if expires is not None and expires <= time.monotonic():
                self._values.pop(key, None)
                return None
            return value

    def set_json(self, key: str, value: Any, ttl: Optional[float] = None) -> None:
        expires = time.monotonic() + ttl if ttl else None
        with self._guard:
            self._values[key] = (json.loads(json.dumps(value)), expires)

    def delete(self, key: str) -> None:
        with self._guard:
            self._values.pop(key, None)

    def claim(self, key: str, ttl: float) -> bool:
        """Set ``key`` only if absent; True if this caller got it."""
        with self._guard:
            value, expires = self._values.get(key, (None, None))
            if value is not None and (expires is None or expires > time.monotonic()):
                return False
            self._values[key] = (True, time.monotonic() + ttl)
            return True

    def add_to_set(self, key: str, member: str) -> None:
        with self._guard:
            members, _ = self._values.get(key, (None, None))
            self._values[key] = (sorted(set(members or []) | {member}), None)

    def members(self, key: str) -> list:
        return list(self.get_json(key) or [])

    @contextmanager
    def lock(self, name: str, ttl: float, wait: float) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        if not lock.acquire(timeout=wait):
            raise LockTimeout(name)
        try:
            yield
        finally:
            lock.release()

    def ping(self) -> bool:
        return True

    def increment(self, key: str) -> int:
        with self._guard:
            value, _ = self._values.get(key, (0, None))
            self._values[key] = (int(value or 0) + 1, None)
            return self._values[key][0]

    def take_slot(self, key: str, limit: int, window: float, blocker: Optional[str] = None) -> Tuple[float, float]:
        """Sliding-window limiter: (0, 0) if a slot was taken now, (seconds until one frees, 0)
        otherwise, or (0, ttl) when ``blocker`` (a cool-down key) is set: then nothing is taken."""
        cooling = self.remaining_ttl(blocker) if blocker else None
        if cooling:
            return 0.0, cooling
        if limit <= 0:
            return 0.0, 0.0
        return self._take(key, limit, window), 0.0

    def _take(self, key: str, limit: int, window: float) -> float:
        now = time.monotonic()
        with self._guard:
            stamps = [t for t in self._slots.get(key, []) if t > now - window]
            if len(stamps) < limit:
                self._slots[key] = stamps + [now]
                return 0.0
            self._slots[key] = stamps
            return stamps[0] + window - now

    def remaining_ttl(self, key: str) -> Optional[float]:
        with self._guard:
            value, expires = self._values.get(key, (None, None))
        if value is None or expires is None or expires <= time.monotonic():
            return None
        return expires - time.monotonic()


# One atomic step on the shared clock (Redis TIME), so every worker and instance counts the same
# window; each cool-down key is checked in the same round trip (this runs before every upstream
# call). One call takes slots for a whole batch of requests (see group_commit.py): KEYS[i] is the
# i-th request's window, ARGV holds its window length, limit, member name and cool-down key.
_TAKE_SLOTS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local answers = {}
for i = 1, #KEYS do
  local window, limit = tonumber(ARGV[4 * i - 3]), tonumber(ARGV[4 * i - 2])
  local member, blocker = ARGV[4 * i - 1], ARGV[4 * i]
  local wait, cooling = 0, 0
  if blocker ~= '' then
    local ttl = redis.call('PTTL', blocker)
    if ttl > 0 then cooling = ttl / 1000 end
  end
  if cooling == 0 and limit > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
    if redis.call('ZCARD', KEYS[i]) < limit then
      redis.call('ZADD', KEYS[i], now, member)
      redis.call('PEXPIRE', KEYS[i], math.ceil(window * 1000))
    else
      local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
      wait = tonumber(oldest[2]) + window - now
    end
  end
  answers[2 * i - 1] = tostring(wait)
  answers[2 * i] = tostring(cooling)
end
return answers
"""


class RedisStore:
    """Redis-backed store. Every call is bounded by the client's timeouts (RedisSettings.timeout) and
    raises redis-py's errors: failover_store.FailoverStore decides what a failure means."""

    kind = "redis"

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        options = client.get_connection_kwargs()
        # The rate-limit script on a connection of its own, opened with the pool's own settings.
        self._slot_script = ScriptLine(redis.Connection(**options), _TAKE_SLOTS)
        # Callers queued behind a batch wait no longer than one call may take (the socket timeout):
        # a Redis that stopped answering costs them what it costs the leader.
        self._slot_batches: GroupCommit[tuple, Tuple[float, float]] = GroupCommit(
            self._take_batch, wait_limit=options.get("socket_timeout"))

    def take_slot(self, key: str, limit: int, window: float, blocker: Optional[str] = None) -> Tuple[float, float]:
        """Sliding-window limiter shared by all workers; see MemoryStore.take_slot. Concurrent calls
        share one round trip."""
        try:
            return self._slot_batches.submit((NAMESPACE + key, limit, window, NAMESPACE + blocker if blocker else ""))
        except GroupCommitTimeout as exc:
            raise redis.TimeoutError(f"rate-limit batch: {exc}") from None

    def _take_batch(self, requests: Sequence[tuple]) -> List[Tuple[float, float]]:
        keys, args = [], []
        for key, limit, window, blocker in requests:
            keys.append(key)
            args += [window, limit, uuid.uuid4().hex, blocker]
        numbers = [float(item) for item in self._slot_script.call(keys, args)]
        return list(zip(numbers[0::2], numbers[1::2]))

    def increment(self, key: str) -> int:
        return int(self.client.incr(NAMESPACE + key))

    def remaining_ttl(self, key: str) -> Optional[float]:
        millis = self.client.pttl(NAMESPACE + key)
        return millis / 1000 if isinstance(millis, int) and millis > 0 else None

    def get_json(self, key: str) -> Any:
        raw = self.client.get(NAMESPACE + key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def set_json(self, key: str, value: Any, ttl: Optional[float] = None) -> None:
        ttl_ms = int(ttl * 1000) if ttl else None
        self.client.set(NAMESPACE + key, json.dumps(value), px=ttl_ms)

    def delete(self, key: str) -> None:
        self.client.delete(NAMESPACE + key)

    def claim(self, key: str, ttl: float) -> bool:
        """Set ``key`` only if absent; True if this caller got it."""
        return bool(self.client.set(NAMESPACE + key, "1", nx=True, px=int(ttl * 1000)))

    def add_to_set(self, key: str, member: str) -> None:
        self.client.sadd(NAMESPACE + key, member)

    def members(self, key: str) -> list:
        raw = self.client.smembers(NAMESPACE + key) or set()
        return sorted(item.decode() if isinstance(item, bytes) else item for item in raw)

    def acquire(self, name: str, ttl: float, wait: float) -> Lock:
        """A held lock (release it with ``release``); LockTimeout if another holder kept it ``wait`` s."""
        lock = self.client.lock(NAMESPACE + "lock:" + name, timeout=ttl, blocking_timeout=wait, sleep=0.05)
        if not lock.acquire():
            raise LockTimeout(name)
        return lock

    @staticmethod
    def release(lock: Lock) -> None:
        lock.release()

    @contextmanager
    def lock(self, name: str, ttl: float, wait: float) -> Iterator[None]:
        held = self.acquire(name, ttl, wait)
        try:
            yield
        finally:
            self.release(held)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False


def redis_client(settings: RedisSettings) -> redis.Redis:
    """A client whose every call is bounded: ``settings.timeout`` to connect, the same for each
    answer, ``pool_timeout`` for a free pooled connection. A blocking pool: under gevent hundreds of
    requests may want a connection at once; they wait briefly for one rather than fail with "Too
    many connections"."""
    pool = redis.BlockingConnectionPool(
        host=settings.host,
        port=settings.port,
        password=settings.password or None,
        db=settings.db,
        socket_connect_timeout=settings.timeout,
        socket_timeout=settings.timeout,
        # Once more on a new connection when a kept one turns out closed (Redis restarted), as
        # redis-py does by default; never after a timeout: a Redis that does not answer must cost
        # one bound, not several.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        health_check_interval=30,
        max_connections=settings.pool_size,
        timeout=settings.pool_timeout,
        # No CLIENT SETINFO on connect: it costs a round trip, and redis-py looks its own version up
        # in the package metadata (a disk read) for every new connection.
        driver_info=None,
        # Nor the probe for Redis Enterprise maintenance notifications, which a plain redis-server
        # answers "unknown subcommand" on every new connection.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
    return redis.Redis(connection_pool=pool)
