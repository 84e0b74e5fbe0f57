"""The gthread worker (worker_class: gthread): the same reply reading under real OS threads.

gevent is the default and every other e2e test runs under it; here one proxy with thread workers
streams, keeps a silent stream alive, notices a client that left, and times out a silent upstream,
and a chat waiting for the upstream's headers runs no thread besides its request's.
"""
from __future__ import annotations

import threading
import time

import pytest

from .conftest import directive, threads_of_children
from .test_upstream_failures_e2e import ask, leave_a_hanging_stream


@pytest.fixture(scope="module")
def threaded(start_proxy):
    return start_proxy({"WORKER_CLASS": "gthread", "PROCESS_THREADS": "8", "UPSTREAM_READ_TIMEOUT": "2"})


def test_a_stream_arrives_whole(threaded):
    text = "Grüße 世界 🌍 " * 20
    chunks = list(threaded.client().chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": directive(text=text, chunk=5)}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_keep_alives_during_upstream_pings(threaded):
    response = ask(threaded, directive(emu="hang", text="abcdefghi", chunk=3, after_chunks=1, hang=2.5), stream=True)
    body = response.content.decode()
    assert body.count(": keep-alive") >= 1 and body.endswith("data: [DONE]\n\n")


def test_a_client_that_leaves_closes_the_upstream(threaded, emulator):
    record, delay = leave_a_hanging_stream(threaded, emulator)
    assert record["closed_early"] is True and delay < 3.0


def test_an_upstream_silent_mid_reply_is_a_504(threaded):
    # One event, then 4 s without a byte: longer than UPSTREAM_READ_TIMEOUT (2 s).
    response = ask(threaded, directive(text="abcdef", chunk=3, interval=4))
    assert response.status_code == 504 and response.json()["error"]["code"] == "upstream_timeout"


def test_chats_waiting_for_the_upstream_headers_run_no_helper_threads(start_proxy):
    # One worker with 4 request threads. 4 chats at once, each waiting 1.5 s for the upstream's
    # headers: the worker runs its request threads and nothing per chat besides (before, the
    # upstream call ran on a thread of its own until its headers came: +4 threads).
    proxy = start_proxy({"WORKER_CLASS": "gthread", "PROCESS_WORKERS": "1", "PROCESS_THREADS": "4"})

    def four_slow_chats():
        replies = []
        chats = [threading.Thread(target=lambda: replies.append(
            ask(proxy, directive(text="late", first_delay=1.5), api_key="rt-threads"))) for _ in range(4)]
        for chat in chats:
            chat.start()
        return chats, replies

    chats, replies = four_slow_chats()  # the first round starts all request threads of the pool
    for chat in chats:
        chat.join(10)
    assert [r.status_code for r in replies] == [200] * 4
    idle = threads_of_children(proxy.process.pid)

    chats, replies = four_slow_chats()
    busiest, until = 0, time.monotonic() + 1.2
    while time.monotonic() < until:
        busiest = max(busiest, threads_of_children(proxy.process.pid))
        time.sleep(0.02)
    for chat in chats:
        chat.join(10)
    assert [r.json()["choices"][0]["message"]["content"] for r in replies] == ["late"] * 4
    assert busiest <= idle, (idle, busiest)
