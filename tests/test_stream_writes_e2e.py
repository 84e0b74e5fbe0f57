"""What one upstream read turns into on the client's connection: the chunks of all its events in
one write (one HTTP chunk), the role chunk with the first events, the tail (finish, [DONE]) in
one write of its own. A proxy that falls behind finds many events per read; this is what keeps
its cost per event from growing with the backlog.

The upstream is a raw socket server, so the test decides exactly which events arrive together.
"""
import json
import socket
import time

import pytest

from .conftest import Proxy
from .emulator.tokens import mint_access_token
from .raw_http import RawServer, chunked

CID = "6f1d2c3b-0000-4000-8000-00000000c1d0"
HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")


def assistant(text, final=False):
    metadata = {"message_type": "next", "model_slug": "gpt-4o"}
    if final:
        metadata["finish_details"] = {"type": "stop", "stop_tokens": [200002]}
    return {"message": {
        "id": "a-1", "author": {"role": "assistant", "name": None, "metadata": {}},
        "content": {"content_type": "text", "parts": [text]},
        "status": "finished_successfully" if final else "in_progress",
        "end_turn": True if final else None, "weight": 1.0, "metadata": metadata, "recipient": "all",
    }, "conversation_id": CID, "error": None}


def frames(*documents):
    return b"".join(b"data: " + json.dumps(document).encode() + b"\n\n" for document in documents)


PIECES = ["Hel", "lo, ", "wor", "ld", "!"]
TEXTS = ["".join(PIECES[:count]) for count in range(1, len(PIECES) + 1)]


def first_then_rest(conn):
    """The first event alone; after a pause, the other four and the end in one write."""
    conn.sendall(HEAD + chunked([frames(assistant(TEXTS[0]))])[:-5])  # without the last-chunk marker
    time.sleep(0.3)
    rest = frames(*(assistant(text) for text in TEXTS[1:]), assistant(TEXTS[-1], final=True)) + b"data: [DONE]\n\n"
    conn.sendall(chunked([rest]))
    return "close"


@pytest.fixture
def raw_upstream_proxy(redis_server, tmp_path):
    """start(env): a proxy whose upstream answers one conversation call with ``first_then_rest``."""
    started = []

    def start(env=None):
        server = RawServer([first_then_rest])
        proxy = Proxy(server, redis_server.port, str(tmp_path), env or {}).start()
        started.append((proxy, server))
        return proxy

    yield start
    for proxy, server in started:
        proxy.stop()
        server.close()


def http_chunks(proxy, body):
    """The proxy's answer as the HTTP chunks it was written in (a raw client: the SDK hides them)."""
    request = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + mint_access_token("writes", 3600).encode() + b"\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(request) + request)
        raw = b""
        while not raw.endswith(b"\r\n0\r\n\r\n"):
            data = sock.recv(65536)
            assert data, raw
            raw += data
    head, _, body_bytes = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower(), head
    pieces = []
    while True:
        size_line, _, body_bytes = body_bytes.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return pieces
        pieces.append(body_bytes[:size])
        assert body_bytes[size:size + 2] == b"\r\n"
        body_bytes = body_bytes[size + 2:]


def sse_data(piece):
    return [line[len(b"data: "):] for line in piece.split(b"\n") if line.startswith(b"data: ")]


CHAT = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def test_the_events_of_one_upstream_read_go_out_in_one_write(raw_upstream_proxy):
    writes = http_chunks(raw_upstream_proxy(), CHAT)
    events = [sse_data(piece) for piece in writes]
    # role + the first text; the four texts that came together; the finish chunk + [DONE]
    assert [len(group) for group in events] == [2, 4, 2], writes
    chunks = [json.loads(data) for group in events for data in group if data != b"[DONE]"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks[1:]) == "Hello, world!"
    assert [chunk["choices"][0]["delta"]["content"] for chunk in chunks[1:-1]] == PIECES
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert events[-1][-1] == b"[DONE]"
    assert len({chunk["id"] for chunk in chunks}) == 1


def test_with_stream_sleep_time_every_text_is_a_write_of_its_own_and_a_pause(raw_upstream_proxy):
    proxy = raw_upstream_proxy({"REFRESH_TOACCESS_STREAM_SLEEP_TIME": "0.2"})
    started = time.monotonic()
    writes = http_chunks(proxy, CHAT)
    assert time.monotonic() - started >= 5 * 0.2
    assert [len(sse_data(piece)) for piece in writes] == [2, 1, 1, 1, 1, 2], writes
