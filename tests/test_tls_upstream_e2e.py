"""The upstream over HTTPS, as the real one is: the reply is read from a TLS socket with a timeout
per read (silences, keep-alives, a client that leaves), under both worker models.

The emulator serves HTTPS with the self-signed certificate in tests/tls/, which the proxy trusts
through REQUESTS_CA_BUNDLE (the setting requests and this service read for a private CA).
"""
from __future__ import annotations

import tempfile

import pytest

from .conftest import TLS_CERT, Emulator, Proxy, directive
from .test_upstream_failures_e2e import ask, leave_a_hanging_stream


@pytest.fixture(scope="module")
def tls_emulator():
    emulator = Emulator(tls=True).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module", params=["gevent", "gthread"])
def proxy(request, tls_emulator, redis_server, workdir):
    env = {"REQUESTS_CA_BUNDLE": TLS_CERT, "WORKER_CLASS": request.param, "PROCESS_THREADS": "8",
           "KEEP_ALIVE_INTERVAL": "0.5", "UPSTREAM_READ_TIMEOUT": "3"}
    proxy = Proxy(tls_emulator, redis_server.port, tempfile.mkdtemp(dir=workdir), env).start()
    yield proxy
    proxy.stop()


def test_a_stream_over_tls_arrives_whole(proxy):
    text = "Grüße 世界 🌍 over TLS. " * 30
    chunks = list(proxy.client().chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": directive(text=text, chunk=7)}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    reply = proxy.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": directive(text=text, encoding="v1", chunk=5)}])
    assert reply.choices[0].message.content == text


def test_silences_on_a_tls_upstream_get_keep_alives(proxy):
    # Events 2 s apart: reads time out on the TLS socket every tick, and the reply goes on.
    response = ask(proxy, directive(text="abcdef", chunk=3, interval=2), stream=True)
    body = response.content.decode()
    assert body.count(": keep-alive") >= 2
    assert '"content":"abc"' in body and '"content":"def"' in body and body.endswith("data: [DONE]\n\n")


def test_a_client_that_leaves_closes_the_tls_upstream(proxy, tls_emulator):
    record, delay = leave_a_hanging_stream(proxy, tls_emulator)
    assert record["closed_early"] is True and delay < 3.0


def test_a_tls_upstream_silent_past_the_read_timeout_ends_the_reply(proxy):
    response = ask(proxy, directive(text="abcdef", chunk=3, interval=6), stream=True)
    body = response.content.decode()
    assert '"content":"abc"' in body and '"code":"upstream_timeout"' in body
    assert '"content":"def"' not in body and body.endswith("data: [DONE]\n\n")


@pytest.mark.parametrize("emu", ["handoff_thinking", "wss_2024"])
def test_a_reply_handed_off_to_a_wss_socket_arrives_whole(proxy, emu):
    # The emulator's WebSocket speaks TLS when it does: the dial's TLS handshake (in steps) checks
    # the certificate against REQUESTS_CA_BUNDLE, under both worker classes.
    from .test_handoff_e2e import ANSWER, ask
    from .test_reasoning_e2e import content_of

    chunks = list(proxy.client().chat.completions.create(
        model="gpt-5-thinking", stream=True, messages=ask("gpt-5-thinking", emu=emu, text=ANSWER, encoding="v1")))
    assert content_of(chunks) == ANSWER and chunks[-1].choices[0].finish_reason == "stop"
