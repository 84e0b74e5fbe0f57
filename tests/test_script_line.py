"""ScriptLine: a Lua script on a Redis connection of its own (the rate limiter's), against real
redis-servers: a script Redis forgot, a Redis that restarted, an answer cut off by a timeout."""
from __future__ import annotations

import time

import pytest
import redis

from backend_to_api.script_line import ScriptLine
from backend_to_api.settings import RedisSettings
from backend_to_api.store import redis_client

from .conftest import RedisServer

ECHO = "return ARGV[1]"
# Busy for ARGV[2] seconds (Redis answers nobody meanwhile), then the first argument.
SLOW_ECHO = """
local clock = redis.call('TIME')
local started = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
repeat
  clock = redis.call('TIME')
until tonumber(clock[1]) + tonumber(clock[2]) / 1000000 - started > tonumber(ARGV[2])
return ARGV[1]
"""


def connection_to(port: int, **overrides) -> redis.Connection:
    """A connection opened as the store opens its script connection (the pool's own settings)."""
    client = redis_client(RedisSettings(host="127.0.0.1", port=port, db=6))
    return redis.Connection(**{**client.get_connection_kwargs(), **overrides})


def calls(port: int, command: str) -> int:
    stats = redis.Redis(port=port).info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_a_script_redis_forgot_is_sent_whole_once(redis_server):
    line = ScriptLine(connection_to(redis_server.port), ECHO)
    assert line.call(["k"], ["first"]) == b"first"
    redis.Redis(port=redis_server.port).script_flush()
    evals = calls(redis_server.port, "eval")
    assert line.call(["k"], ["second"]) == b"second"  # NOSCRIPT -> EVAL, which loads it again
    assert line.call(["k"], ["third"]) == b"third"
    assert calls(redis_server.port, "eval") == evals + 1


def test_a_restarted_redis_is_reached_on_a_new_connection(tmp_path):
    server = RedisServer(str(tmp_path)).start()
    try:
        line = ScriptLine(connection_to(server.port), ECHO)
        assert line.call(["k"], ["before"]) == b"before"
        server.stop()
        restarted = RedisServer(str(tmp_path))
        restarted.port = server.port
        server = restarted.start()
        assert line.call(["k"], ["after"]) == b"after"
    finally:
        server.stop()


def test_redis_away_is_an_error_the_store_can_degrade_on(tmp_path):
    server = RedisServer(str(tmp_path)).start()
    line = ScriptLine(connection_to(server.port), ECHO)
    assert line.call(["k"], ["up"]) == b"up"
    server.stop()
    with pytest.raises(redis.ConnectionError):
        line.call(["k"], ["down"])


def test_an_answer_cut_off_by_a_timeout_never_answers_the_next_call(redis_server):
    line = ScriptLine(connection_to(redis_server.port, socket_timeout=0.2), SLOW_ECHO)
    with pytest.raises(redis.TimeoutError):
        line.call(["k"], ["late", "0.5"])
    time.sleep(0.5)  # the late answer has now been sent, to the connection that was dropped
    assert line.call(["k"], ["mine", "0"]) == b"mine"


def test_a_failing_script_is_an_error_and_the_next_call_works(redis_server):
    line = ScriptLine(connection_to(redis_server.port), "return redis.call('INCR', KEYS[1])")
    client = redis.Redis(port=redis_server.port, db=6)
    client.set("not-a-number", "x")
    with pytest.raises(redis.ResponseError):
        line.call(["not-a-number"], [])
    client.delete("a-counter")
    assert line.call(["a-counter"], []) == 1
