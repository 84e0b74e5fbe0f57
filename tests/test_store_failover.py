"""FailoverStore against real redis-servers: a Redis that comes up after the store started, one
killed and restarted, one that accepts connections and never answers. The store must use Redis
again within seconds, never stall a caller for more than about one bound, and say each change once."""
from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest
import redis

from backend_to_api.failover_store import open_store
from backend_to_api.settings import RedisSettings

from .conftest import RedisServer, SilentListener, free_port, wait_until

TIMEOUT = 0.5  # RedisSettings.timeout's default


def store_on(port: int):
    return open_store(RedisSettings(host="127.0.0.1", port=port, db=7))


def written(server: RedisServer, key: str) -> bool:
    return redis.Redis(port=server.port, db=7).exists("b2a:" + key) == 1


def test_a_store_started_without_redis_uses_it_once_it_answers(tmp_path, caplog):
    caplog.set_level(logging.INFO, "backend_to_api.failover_store")
    port = free_port()
    first, second = store_on(port), store_on(port)  # two workers that started while Redis was down
    assert first.kind == "memory"
    server = RedisServer(str(tmp_path), port).start()
    try:
        key = "late-" + uuid.uuid4().hex

        def shared() -> bool:
            first.set_json(key, {"v": 1}, ttl=60)
            return second.get_json(key) == {"v": 1}

        started = time.monotonic()
        wait_until(shared, timeout=5, what="the late Redis in use")
        assert time.monotonic() - started < 2.5  # checked again every second
        assert written(server, key) and first.kind == second.kind == "redis"
    finally:
        server.stop()
    assert caplog.text.count("is not reachable: using an in-process store") == 2  # once per store
    assert caplog.text.count("is back in redis") == 2


def test_redis_killed_and_restarted(tmp_path, caplog):
    caplog.set_level(logging.INFO, "backend_to_api.failover_store")
    server = RedisServer(str(tmp_path)).start()
    store = store_on(server.port)
    try:
        assert store.kind == "redis"
        server.stop()
        # Down: every kind of call is served in-process at once, locks and limits included.
        for _ in range(50):
            store.set_json("down", 1)
            assert store.get_json("down") == 1
        with store.lock("down-lock", ttl=5, wait=1):
            assert store.take_slot("rate:down", 1, 60.0) == (0.0, 0.0)
        assert store.take_slot("rate:down", 1, 60.0)[0] > 0  # the limit holds, in this process
        assert store.kind == "memory"
        server.start()  # the same port
        key = "back-" + uuid.uuid4().hex
        wait_until(lambda: store.set_json(key, 1) or written(server, key), timeout=5, what="Redis in use again")
        assert store.kind == "redis"
    finally:
        server.stop()
    assert caplog.text.count("stopped answering") == 1 and caplog.text.count("is back in redis") == 1


def test_a_redis_that_never_answers_costs_one_bound(tmp_path):
    server = RedisServer(str(tmp_path)).start()
    store = store_on(server.port)
    assert store.take_slot("rate:warm", 100, 60.0) == (0.0, 0.0)  # the script connection is open
    server.stop()
    listener = SilentListener(server.port)
    try:
        # 30 callers at once, as a worker's greenlets in a burst: most of them wait in the rate
        # limiter's queue behind one round trip that never comes back.
        took, answers = [], []
        start = threading.Barrier(30)

        def caller() -> None:
            start.wait()
            began = time.monotonic()
            answers.append(store.take_slot("rate:hung", 100, 60.0))
            took.append(time.monotonic() - began)

        threads = [threading.Thread(target=caller) for _ in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(answers) == 30 and all(wait == 0 for wait, _ in answers)
        assert max(took) <= 2 * TIMEOUT + 0.3, max(took)
        # From now on the in-process store answers; one caller a second pays a bounded check.
        began = time.monotonic()
        for _ in range(20):
            store.set_json("k", 1)
            assert store.get_json("k") == 1
        assert time.monotonic() - began <= TIMEOUT + 0.3
        assert store.kind == "memory"
    finally:
        listener.close()


@pytest.mark.parametrize("call", ["get", "lock"])
def test_a_hung_redis_bounds_plain_calls_and_locks(tmp_path, call):
    server = RedisServer(str(tmp_path)).start()
    store = store_on(server.port)
    store.set_json("k", 1)
    server.stop()
    listener = SilentListener(server.port)
    try:
        began = time.monotonic()
        if call == "get":
            assert store.get_json("k") is None  # the in-process store, fresh at the outage
        else:
            with store.lock("hung", ttl=5, wait=5):
                pass
        assert time.monotonic() - began <= 2 * TIMEOUT + 0.3
    finally:
        listener.close()


def test_an_error_redis_answers_is_not_an_outage(redis_server, caplog):
    caplog.set_level(logging.INFO, "backend_to_api.failover_store")
    store = store_on(redis_server.port)
    redis.Redis(port=redis_server.port, db=7).rpush("b2a:a-list", "x")  # GET on it: WRONGTYPE
    for _ in range(3):
        assert store.get_json("a-list") is None  # served in-process, this call only
    store.set_json("after", 1)
    assert store.kind == "redis" and written(redis_server, "after")
    assert caplog.text.count("redis refused a call (ResponseError") == 1 and "stopped answering" not in caplog.text
