"""`proxy` set (config.json / PROXY): every upstream call goes through that HTTP proxy, the streamed
conversation included (it then goes through requests' proxy handling rather than the direct pool),
and the reply is read the same way: whole, with keep-alives in silences.

The forward proxy here is a small threaded one written for the test: it reads a request in absolute
form, sends it on to the target with "Connection: close", and relays the answer byte for byte.
"""
from __future__ import annotations

import socket
import threading
import urllib.parse

import pytest

from .conftest import directive, free_port
from .test_upstream_failures_e2e import ask


class ForwardProxy:
    def __init__(self) -> None:
        self.seen: list = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head, body = self._read_request(client)
            request_line, *headers = head.split(b"\r\n")
            method, target, version = request_line.split(b" ")
            url = urllib.parse.urlsplit(target.decode())
            self.seen.append((method.decode(), url.path))
            kept = [h for h in headers if not h.lower().startswith((b"connection:", b"proxy-"))]
            path = (url.path + ("?" + url.query if url.query else "")).encode()
            with socket.create_connection((url.hostname, url.port)) as upstream:
                upstream.sendall(b" ".join([method, path, version]) + b"\r\n"
                                 + b"\r\n".join(kept + [b"Connection: close"]) + b"\r\n\r\n" + body)
                while data := upstream.recv(65536):
                    client.sendall(data)

    @staticmethod
    def _read_request(client: socket.socket) -> tuple:
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += client.recv(65536)
        head, _, body = buffer.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += client.recv(65536)
        return head, body

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def forward_proxy():
    proxy = ForwardProxy()
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def proxied(start_proxy, forward_proxy):
    return start_proxy({"PROXY": forward_proxy.url, "KEEP_ALIVE_INTERVAL": "0.5"})


def test_the_conversation_goes_through_the_configured_proxy(proxied, forward_proxy):
    text = "through the proxy 世界 🌍 " * 10
    chunks = list(proxied.client(api_key="rt-via-proxy").chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": directive(text=text, chunk=6)}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert ("POST", "/backend-api/conversation") in forward_proxy.seen
    assert ("POST", "/applelogin") in forward_proxy.seen  # the token exchange went the same way


def test_silences_through_the_proxy_get_keep_alives(proxied):
    body = ask(proxied, directive(text="abcdef", chunk=3, interval=1.5), stream=True).content.decode()
    assert ": keep-alive" in body and '"content":"def"' in body and body.endswith("data: [DONE]\n\n")


def test_an_unreachable_proxy_is_a_502(start_proxy):
    proxy = start_proxy({"PROXY": f"http://127.0.0.1:{free_port()}"})
    response = ask(proxy, "hi", api_key="eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.sig")
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_unreachable"
