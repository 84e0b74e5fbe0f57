"""`proxy` set (config.json / PROXY): every upstream call goes through that HTTP proxy, the streamed
conversation included (our own exchange, upstream/http1.py: the absolute-form request for an http
upstream, a CONNECT tunnel for an https one, Proxy-Authorization from the proxy URL), and the reply
is read the same way: whole, with keep-alives in silences.

The forward proxy here is a small threaded one written for the test: it reads a request in absolute
form, sends it on to the target with "Connection: close", and relays the answer byte for byte; or,
for CONNECT, pipes bytes both ways.
"""
from __future__ import annotations

import base64
import socket
import tempfile
import threading
import urllib.parse

import openai
import pytest
import requests

from .conftest import TLS_CERT, Emulator, Proxy, directive, free_port
from .test_upstream_failures_e2e import ask


class ForwardProxy:
    def __init__(self) -> None:
        self.seen: list = []
        self.authorizations: list = []  # Proxy-Authorization values, as they came
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
            self.authorizations += [h.split(b":", 1)[1].strip().decode() for h in headers
                                    if h.lower().startswith(b"proxy-authorization:")]
            if method == b"CONNECT":
                self._tunnel(client, target.decode())
                return
            url = urllib.parse.urlsplit(target.decode())
            self.seen.append((method.decode(), url.path))
            kept = [h for h in headers if not h.lower().startswith((b"connection:", b"proxy-"))]
            path = (url.path + ("?" + url.query if url.query else "")).encode()
            with socket.create_connection((url.hostname, url.port)) as upstream:
                upstream.sendall(b" ".join([method, path, version]) + b"\r\n"
                                 + b"\r\n".join(kept + [b"Connection: close"]) + b"\r\n\r\n" + body)
                while data := upstream.recv(65536):
                    client.sendall(data)

    def _tunnel(self, client: socket.socket, target: str) -> None:
        """CONNECT: a byte pipe both ways until either side closes (TLS goes through it)."""
        self.seen.append(("CONNECT", target))
        host, port = target.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
            self._pipe(client, upstream)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

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


@pytest.fixture(scope="module")
def tls_emulator():
    emulator = Emulator(tls=True).start()
    yield emulator
    emulator.stop()


def test_an_https_upstream_is_reached_through_a_connect_tunnel_with_the_proxy_credentials(
        forward_proxy, tls_emulator, redis_server, workdir):
    host_port = urllib.parse.urlsplit(tls_emulator.url).netloc
    proxy_url = forward_proxy.url.replace("http://", "http://us%40er:p%3Ass@")  # quoted, as in a URL
    proxy = Proxy(tls_emulator, redis_server.port, tempfile.mkdtemp(dir=workdir),
                  {"PROXY": proxy_url, "REQUESTS_CA_BUNDLE": TLS_CERT, "PROCESS_WORKERS": "1"}).start()
    # An access token (used as is, no exchange through the proxy): the conversation is then the only call.
    access_token = requests.post(tls_emulator.url + "/applelogin", data={"refresh_token": "rt-tunnel"},
                                 verify=TLS_CERT, timeout=5).json()["access_token"]
    try:
        text = "tunnelled 世界 🌍 " * 10
        for _ in range(2):  # the second one on the kept tunnel
            chunks = list(proxy.client(api_key=access_token).chat.completions.create(
                model="gpt-4o", stream=True, messages=[{"role": "user", "content": directive(text=text, chunk=6)}]))
            assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    finally:
        proxy.stop()
    # One tunnel, kept for the second chat.
    assert forward_proxy.seen.count(("CONNECT", host_port)) == 1
    assert len(tls_emulator.conversations()) == 2
    expected = "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    assert forward_proxy.authorizations and set(forward_proxy.authorizations) == {expected}


def test_proxy_urls_our_exchange_speaks_and_those_it_refuses_clearly():
    from backend_to_api.errors import UpstreamError
    from backend_to_api.upstream.proxy_route import parse_proxy_url

    assert parse_proxy_url("127.0.0.1:3128") == ("127.0.0.1", 3128, [])  # requests' reading: http
    assert parse_proxy_url("http://proxy.example").port == 80
    for url in ("https://proxy.example:443", "socks5://127.0.0.1:1080"):
        with pytest.raises(UpstreamError) as refused:
            parse_proxy_url(url)
        assert refused.value.status == 502 and refused.value.code == "proxy_not_supported"


# --- the WebSocket hand-off through the proxy ---------------------------------------------------------

def websocket_authority(emulator) -> str:
    """host:port of the emulator's WebSocket server (as its lookup names it)."""
    token = requests.post(emulator.url + "/applelogin", data={"refresh_token": "rt-ws-where"},
                          timeout=5).json()["access_token"]
    url = requests.get(emulator.url + "/backend-api/celsius/ws/user", headers={"Authorization": f"Bearer {token}"},
                       timeout=5).json()["websocket_url"]
    return urllib.parse.urlsplit(url).netloc


def test_a_handed_off_reply_is_dialed_through_the_proxy_and_arrives_whole(proxied, forward_proxy, emulator):
    from .test_handoff_e2e import ANSWER, THOUGHTS_TEXT, ask, connections_since, handoff_records
    from .test_reasoning_e2e import content_of, reasoning_of

    authority = websocket_authority(emulator)
    tunnels_before = forward_proxy.seen.count(("CONNECT", authority))
    before = len(handoff_records(emulator))
    chunks = list(proxied.client(api_key="rt-ws-via-proxy").chat.completions.create(
        model="gpt-5-thinking", stream=True,
        messages=ask("gpt-5-thinking", emu="handoff_thinking", text=ANSWER, encoding="v1", chunk=4)))
    assert reasoning_of(chunks) == THOUGHTS_TEXT and content_of(chunks) == ANSWER
    assert ("GET", "/backend-api/celsius/ws/user") in forward_proxy.seen  # the lookup, as every API call
    assert forward_proxy.seen.count(("CONNECT", authority)) == tunnels_before + 1  # the socket, tunnelled
    assert len(connections_since(emulator, before)) == 1
    reply = proxied.client(api_key="rt-ws-via-proxy").chat.completions.create(  # 2024: the POST names the socket
        model="gpt-4o", messages=ask("gpt-4o", emu="wss_2024", text=ANSWER))
    assert reply.choices[0].message.content == ANSWER
    assert forward_proxy.seen.count(("CONNECT", authority)) == tunnels_before + 2


def test_a_websocket_on_a_refused_address_is_not_tunnelled(proxied, forward_proxy, emulator):
    from .test_handoff_e2e import ask

    seen_before = len(forward_proxy.seen)
    with pytest.raises(openai.APIStatusError) as info:
        proxied.client("rt-ws-metadata-proxied").chat.completions.create(
            model="gpt-4o", messages=ask("gpt-4o", emu="handoff_derived", text="never shown"))
    assert info.value.status_code == 502 and info.value.body["code"] == "upstream_handoff_failed"
    assert "private or local" in info.value.body["message"]
    assert not [target for method, target in forward_proxy.seen[seen_before:] if method == "CONNECT"]


def test_a_wss_hand_off_is_tunnelled_with_tls_inside(forward_proxy, tls_emulator, redis_server, workdir):
    from .test_handoff_e2e import ANSWER, THOUGHTS_TEXT, ask
    from .test_reasoning_e2e import content_of, reasoning_of

    proxy = Proxy(tls_emulator, redis_server.port, tempfile.mkdtemp(dir=workdir),
                  {"PROXY": forward_proxy.url, "REQUESTS_CA_BUNDLE": TLS_CERT, "PROCESS_WORKERS": "1"}).start()
    try:
        chunks = list(proxy.client(api_key="rt-wss-tunnel").chat.completions.create(
            model="gpt-5-thinking", stream=True,
            messages=ask("gpt-5-thinking", emu="handoff_thinking", text=ANSWER, encoding="v1", chunk=4)))
        records = requests.get(tls_emulator.url + "/_emulator/handoff", verify=TLS_CERT, timeout=5).json()
    finally:
        proxy.stop()
    assert reasoning_of(chunks) == THOUGHTS_TEXT and content_of(chunks) == ANSWER
    assert len(records) == 1 and records[0]["commands"]  # spoken to over TLS, through the tunnel
    emulator_port = str(urllib.parse.urlsplit(tls_emulator.url).port)
    assert [t for m, t in forward_proxy.seen if m == "CONNECT" and not t.endswith(":" + emulator_port)]
