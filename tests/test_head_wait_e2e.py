"""A chat whose upstream has not sent its headers yet is still the request's own: when its client
leaves, the upstream request is given up at once (its connection closed), under both worker
classes, instead of waiting for an answer nobody will read.

The upstream is a raw socket server that never answers and notes when the proxy closes the
connection.
"""
import json
import socket
import threading
import time

import pytest

from .conftest import Proxy
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
        assert "499" in proxy.logs()
    finally:
        proxy.stop()
        upstream.close()
