"""A chat whose upstream has not answered yet is still the request's own, under both worker
classes: when its client leaves, the upstream request is given up at once (its connection closed)
instead of waiting for an answer nobody will read; and while the connection itself stalls (a TLS
handshake that never completes), the client gets its headers by the deadline, keep-alives, and
then the timeout as an error frame.

The upstreams are raw socket servers that never answer and note when the proxy hangs up.
"""
import json
import socket
import threading
import time

import pytest
import requests

from .conftest import Proxy, wait_until
from .emulator.tokens import mint_access_token
from .raw_http import RawServer


class SilentUpstream(RawServer):
    """Takes one conversation request, never answers it, and notes when the proxy hangs up."""

    def __init__(self):
        self.closed_at = None
        self.asked = threading.Event()
        super().__init__([self._wait_for_close])

    def _wait_for_close(self, conn):
        self.asked.set()
        conn.settimeout(30)
        try:
            if conn.recv(1) == b"":
                self.closed_at = time.monotonic()
        except OSError:
            self.closed_at = time.monotonic()
        return "close"


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_a_client_that_leaves_before_the_upstream_answers_ends_the_upstream_request(
        redis_server, tmp_path, worker_class):
    upstream = SilentUpstream()
    proxy = Proxy(upstream, redis_server.port, str(tmp_path), {
        "WORKER_CLASS": worker_class, "FIRST_EVENT_TIMEOUT": "20", "UPSTREAM_READ_TIMEOUT": "30"}).start()
    try:
        body = json.dumps({"model": "gpt-4o", "stream": True,
                           "messages": [{"role": "user", "content": "hello?"}]}).encode()
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Authorization: Bearer " + mint_access_token("leaver", 3600).encode() + b"\r\n"
                           b"Content-Length: %d\r\n\r\n" % len(body) + body)
            assert upstream.asked.wait(10)
            time.sleep(0.5)
            left_at = time.monotonic()
        deadline = time.monotonic() + 5
        while upstream.closed_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert upstream.closed_at is not None, "the upstream request was still open 5 s after the client left"
        assert upstream.closed_at - left_at < 2.0
        wait_until(lambda: "499" in proxy.logs(), timeout=3, what="the 499 in the access log")  # logged at the end
    finally:
        proxy.stop()
        upstream.close()


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_while_the_upstream_connection_stalls_the_client_gets_headers_keep_alives_and_a_timeout(
        redis_server, tmp_path, worker_class):
    # An https upstream that accepts the TCP connection and never answers the TLS handshake. The
    # request keeps its own clock meanwhile: headers at first_event_timeout (1 s), keep-alives
    # every 0.5 s, then the connect timeout (3 s) as an error frame.
    from .test_steps import SilentServer

    upstream = SilentServer()
    proxy = Proxy(upstream, redis_server.port, str(tmp_path), {
        "WORKER_CLASS": worker_class, "UPSTREAM_BASE_URL": f"https://127.0.0.1:{upstream.port}",
        "FIRST_EVENT_TIMEOUT": "1", "KEEP_ALIVE_INTERVAL": "0.5", "UPSTREAM_CONNECT_TIMEOUT": "3"}).start()
    try:
        started = time.monotonic()
        response = requests.post(proxy.url + "/v1/chat/completions", stream=True, timeout=30,
                                 headers={"Authorization": "Bearer " + mint_access_token("stall", 3600)},
                                 json={"model": "gpt-4o", "stream": True,
                                       "messages": [{"role": "user", "content": "hello?"}]})
        headers_after = time.monotonic() - started
        body = response.content.decode()
        assert response.status_code == 200 and headers_after < 2.5, headers_after
        assert body.count(": keep-alive") >= 2
        assert '"code":"upstream_timeout"' in body and body.endswith("data: [DONE]\n\n")
        assert upstream.closed.wait(2)
    finally:
        proxy.stop()
        upstream.close()
