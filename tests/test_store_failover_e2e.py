"""Redis comes and goes under running proxies (issue 13 item 4): two instances (one worker each)
that started while Redis was down share tokens and limits within seconds of it coming up, and again
after it was killed and restarted; meanwhile each worker still refreshes a token once; a Redis that
accepts connections and never answers costs a chat at most about a second, streamed or not."""
from __future__ import annotations

import concurrent.futures
import time
import uuid

import pytest
import requests

from .conftest import RedisServer, SilentListener, directive, free_port
from .test_faults_e2e import streamed_text


def chat(proxy, api_key: str, content: str = "hi", stream: bool = False):
    return requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"},
                         json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}],
                               "stream": stream}, timeout=30)


def refreshes(emulator, key: str) -> int:
    return len([r for r in emulator.requests("/applelogin") if (r.get("form") or {}).get("refresh_token") == key])


def seconds_until_shared(emulator, first, second, timeout: float = 8.0) -> float:
    """Chat with a new key on ``first``, then on ``second``, until the second uses the token the
    first refreshed (one refresh in all); how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        key = "rt-failover-" + uuid.uuid4().hex
        assert chat(first, key).status_code == 200 and chat(second, key).status_code == 200
        if refreshes(emulator, key) == 1:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"the two instances did not share a token within {timeout} s")


def two_instances(start_proxy, server: RedisServer):
    env = {"REDIS_PORT": str(server.port), "PROCESS_WORKERS": "1", "RATE_LIMIT_PER_MINUTE": "3",
           "RATE_LIMIT_MAX_WAIT": "0"}
    return start_proxy(env), start_proxy(env)


@pytest.fixture
def late_redis(start_proxy, tmp_path):
    """Two instances pointed at a Redis port where nothing listens yet, and that Redis (not started)."""
    server = RedisServer(str(tmp_path), free_port())
    yield (server, *two_instances(start_proxy, server))
    server.stop()


@pytest.fixture
def running_redis(start_proxy, tmp_path):
    """Two instances started on a running Redis, and that Redis."""
    server = RedisServer(str(tmp_path)).start()
    yield (server, *two_instances(start_proxy, server))
    server.stop()


def test_instances_started_without_redis_share_tokens_and_limits_once_it_is_up(late_redis, emulator):
    server, first, second = late_redis
    key = "rt-before-" + uuid.uuid4().hex
    assert chat(first, key).status_code == 200 and chat(second, key).status_code == 200
    assert refreshes(emulator, key) == 2  # not shared yet: each instance on its own store
    server.start()
    assert seconds_until_shared(emulator, first, second) < 4
    limited = "rt-limit-" + uuid.uuid4().hex
    assert [chat(proxy, limited).status_code for proxy in (first, second, first)] == [200] * 3
    assert chat(second, limited).status_code == 429  # the limit of 3 a minute counts both instances
    assert "is not reachable: using an in-process store" in first.output()
    assert first.output().count("answers again: shared state is back in redis") == 1


def test_redis_killed_and_restarted(running_redis, emulator):
    server, first, second = running_redis
    seconds_until_shared(emulator, first, second)
    server.stop()
    # Down: a worker still makes concurrent first requests of a key wait for one refresh.
    key = "slow-down-" + uuid.uuid4().hex  # the emulator takes refresh_delay over a "slow-" key
    emulator.configure(refresh_delay=0.5)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(lambda _: chat(first, key).status_code, range(3)))
    assert statuses == [200] * 3 and refreshes(emulator, key) == 1  # the limit is 3
    server.start()
    assert seconds_until_shared(emulator, first, second) < 4
    assert first.output().count("stopped answering") == 1


def test_a_redis_that_never_answers_costs_a_chat_about_a_second(start_proxy, tmp_path):
    server = RedisServer(str(tmp_path)).start()
    proxy = start_proxy({"REDIS_PORT": str(server.port), "PROCESS_WORKERS": "1"})
    known = "rt-hung-" + uuid.uuid4().hex
    text = directive(text="through a hung redis")

    def timed(key: str, stream: bool) -> float:
        began = time.monotonic()
        response = chat(proxy, key, text, stream)
        body = streamed_text(response.text) if stream else response.json()["choices"][0]["message"]["content"]
        assert response.status_code == 200 and body == "through a hung redis"
        return time.monotonic() - began

    normal = min(timed(known, stream) for stream in (False, True, False, True))
    server.stop()
    listener = SilentListener(server.port)
    try:
        # The first chats meet the hang; later ones the in-process store, with a bounded check of
        # Redis once a second; a new key also takes the refresh lock and writes the token.
        took = [timed(key, stream) for key in (known, "rt-hung-new-" + uuid.uuid4().hex)
                for stream in (False, True, False, True)]
        time.sleep(1.1)
        took += [timed(known, stream) for stream in (False, True)]
    finally:
        listener.close()
    assert max(took) - normal <= 1.5, (normal, took)
