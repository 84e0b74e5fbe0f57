"""The rate limiter on both stores: a real Redis (shared by two limiters, as two workers) and the
in-process fallback."""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from backend_to_api.errors import ApiError
from backend_to_api.failover_store import open_store
from backend_to_api.limits import RateLimiter
from backend_to_api.settings import RedisSettings
from backend_to_api.store import MemoryStore, RedisStore, redis_client


@pytest.fixture(params=["redis", "memory"])
def stores(request, redis_server):
    if request.param == "memory":
        store = MemoryStore()
        return store, store
    settings = RedisSettings(host="127.0.0.1", port=redis_server.port, db=5)
    return RedisStore(redis_client(settings)), RedisStore(redis_client(settings))


def test_limit_is_shared_and_answers_429_with_retry_after(stores):
    first, second = (RateLimiter(store, per_minute=3, max_wait=0) for store in stores)
    key = "rt-" + uuid.uuid4().hex
    first.acquire(key, "gpt-4o")
    second.acquire(key, "gpt-4o")
    first.acquire(key, "gpt-4o")
    with pytest.raises(ApiError) as info:
        second.acquire(key, "gpt-4o")
    assert info.value.status == 429 and 55 <= int(info.value.headers["Retry-After"]) <= 60
    RateLimiter(stores[0], per_minute=3, max_wait=0).acquire("rt-other-" + key, "gpt-4o")  # per token


def test_a_request_over_the_limit_queues_briefly(stores):
    limiter = RateLimiter(stores[0], per_minute=2, max_wait=2.0, window=1.0)
    key = "rt-" + uuid.uuid4().hex
    started = time.monotonic()
    for _ in range(4):
        limiter.acquire(key, "gpt-4o")
    assert 0.9 <= time.monotonic() - started < 2.5


def test_cool_down_after_an_upstream_429(stores):
    first, second = (RateLimiter(store, per_minute=0, max_wait=0) for store in stores)
    key = "rt-" + uuid.uuid4().hex
    first.cool_down(key, "gpt-4", 120)
    with pytest.raises(ApiError) as info:
        second.acquire(key, "gpt-4")
    assert info.value.code == "model_cap_exceeded" and info.value.headers["x-should-retry"] == "false"
    assert 118 <= int(info.value.headers["Retry-After"]) <= 120
    second.acquire(key, "gpt-4o")  # another model is not cooling


def test_redis_down_limits_within_the_worker():
    """No Redis: the limit still holds, counted by this worker alone (the in-process store), and
    nothing fails for want of Redis."""
    store = open_store(RedisSettings(host="127.0.0.1", port=1))
    RateLimiter(store, per_minute=1, max_wait=0).acquire("rt-x", "gpt-4o")
    with pytest.raises(ApiError) as info:
        RateLimiter(store, per_minute=1, max_wait=0).acquire("rt-x", "gpt-4o")
    assert info.value.status == 429 and store.kind == "memory"


def test_a_burst_takes_exactly_the_limit_in_few_round_trips(redis_server):
    """300 callers at once (as a worker's threads or greenlets are in a burst of chats): exactly
    the limit gets a slot, and they share round trips rather than making one each."""
    client = redis_client(RedisSettings(host="127.0.0.1", port=redis_server.port, db=5))
    store = RedisStore(client)
    key = "rate:burst-" + uuid.uuid4().hex
    calls_before = _evalsha_calls(client)
    start = threading.Barrier(300)
    answers = []

    def caller() -> None:
        start.wait()
        answers.append(store.take_slot(key, 100, 60.0, blocker="cool:none"))

    threads = [threading.Thread(target=caller) for _ in range(300)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(answers) == 300
    taken = [wait for wait, cooling in answers if wait == 0]
    assert len(taken) == 100 and all(55 < wait <= 60 for wait, _ in answers if wait)
    round_trips = _evalsha_calls(client) - calls_before
    assert 1 <= round_trips < 150, round_trips


def _evalsha_calls(client) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))
