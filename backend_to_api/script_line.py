"""One Lua script called over a Redis connection of its own, for a caller that never overlaps itself.

The connection is a plain ``redis.Connection`` used through its public ``send_command`` and
``read_response``, opened with the same settings (timeouts included) as the store's pool.

The rate-limit slots are taken on every chat, one batch at a time per worker (group_commit.py).
Through redis-py's client each call also passes its command layers, its retry wrapper, and the
pool's checkout, health peek and release. A connection that only this caller uses needs none of
that: send, read the answer. Profiled in the proxy (bench/profile_proxy.py, 1000 short chats over
5 s): the script call went from 14.7% of a chat's CPU to 9.0%, the whole rate limit from 17.5% to
11.9%.
"""
from __future__ import annotations

import hashlib
from typing import Any, Sequence

import redis
from redis.exceptions import NoScriptError


class ScriptLine:
    """``call(keys, args)`` runs the script (EVALSHA, EVAL once Redis does not know it yet, e.g.
    after a restart). Not for concurrent callers: one call at a time. Errors are redis-py's
    (RedisError). redis-py's connection drops its socket on any error during a command (a
    timeout, a killed greenlet), so an answer that comes late never answers the next call, and it
    reconnects on the next send."""

    def __init__(self, connection: redis.Connection, script: str) -> None:
        self._script = script
        self._sha = hashlib.sha1(script.encode()).hexdigest()
        self._connection = connection  # ours alone; it connects when first used

    def call(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return self._run(keys, args)
        except redis.ConnectionError:
            # A kept connection that Redis (restarted, or its idle timeout) had closed: once more,
            # on a new one, as redis-py's own retry would.
            return self._run(keys, args)

    def _run(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return self._send("EVALSHA", self._sha, keys, args)
        except NoScriptError:
            return self._send("EVAL", self._script, keys, args)

    def _send(self, command: str, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        self._connection.send_command(command, script, len(keys), *keys, *args)
        return self._connection.read_response()
