"""The gthread worker (worker_class: gthread): the same reply reading under real OS threads.

gevent is the default and every other e2e test runs under it; here one proxy with thread workers
streams, keeps a silent stream alive, notices a client that left, and times out a silent upstream.
"""
from __future__ import annotations


import pytest

from .conftest import directive
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
