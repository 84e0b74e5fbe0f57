"""bench_streams.py's own HTTP/SSE reader: a cut or malformed body must count as broken.

The benchmark reads replies straight off the socket instead of through http.client, so these
check that it is still as strict: the chunked framing (a body that ends before its last chunk,
a bad size line, a chunk without its CRLF), events split across chunks and reads, and bodies
that are not chunked. bench_streams monkey-patches on import, so the checks run in a subprocess.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import json, socket, sys
sys.path.insert(0, "bench")
import bench_streams as b
import gevent

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

def chunk(text):
    data = text.encode()
    return b"%x\r\n%b\r\n" % (len(data), data)

def outcome(raw, recv_size=65536, limit=None):
    """What the reader makes of `raw` sent in 5-byte writes and read `recv_size` bytes at a time."""
    b.RECV_SIZE = recv_size
    writer, reader = socket.socketpair()
    def write():
        for start in range(0, len(raw), 5):
            writer.sendall(raw[start:start + 5])
            gevent.sleep(0)
        writer.close()
    gevent.spawn(write)
    data, error = [], ""
    try:
        reply = b.Reply(reader)
        if limit is not None:
            return {"status": reply.status, "body": reply.read(limit).decode()}
        for item in b.sse_data(reply.pieces()):
            data.append(item.decode())
    except Exception as exc:
        error = type(exc).__name__
    finally:
        reader.close()
    return {"data": data, "error": error}

whole = HEAD + chunk("data: a\n\n") + chunk("event: x\ndata: 世界🌍\n\n") + chunk("data: [DONE]\n\n") + b"0\r\n\r\n"
split = HEAD + chunk("data: 世") + chunk("界\n") + chunk("\ndata: q\n\ndata: r") + chunk("\n\n") + b"0\r\n\r\n"
cases = {
    "whole": outcome(whole),
    "whole, 3-byte reads": outcome(whole, 3),
    "split events": outcome(split),
    "split events, 1-byte reads": outcome(split, 1),
    "no last chunk": outcome(whole[:-5]),
    "cut in a chunk": outcome(whole[:len(HEAD) + 20]),
    "cut in the headers": outcome(HEAD[:20]),
    "chunk without CRLF": outcome(HEAD + b"3\r\nabcX\r\n0\r\n\r\n"),
    "bad size line": outcome(HEAD + b"zz\r\nabc\r\n0\r\n\r\n"),
    "negative size": outcome(HEAD + b"-3\r\nabc\r\n0\r\n\r\n"),
    "content-length": outcome(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ndata: a\n\n"),
    "content-length cut": outcome(b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\ndata: a\n\n"),
    "until close": outcome(b"HTTP/1.1 200 OK\r\n\r\ndata: a\n\ndata: b\n\n"),
    "read limit": outcome(b"HTTP/1.1 500 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("abc") + chunk("defg")
                          + b"0\r\n\r\n", limit=5),
}
print(json.dumps(cases))
'''


@pytest.fixture(scope="module")
def cases() -> dict:
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_whole_bodies_give_every_event_however_they_are_read(cases):
    expected = {"data": ["a", "世界🌍", "[DONE]"], "error": ""}
    assert cases["whole"] == expected and cases["whole, 3-byte reads"] == expected
    expected = {"data": ["世界", "q", "r"], "error": ""}
    assert cases["split events"] == expected and cases["split events, 1-byte reads"] == expected


def test_cut_bodies_break_after_the_events_that_came_whole(cases):
    assert cases["no last chunk"] == {"data": ["a", "世界🌍", "[DONE]"], "error": "IncompleteRead"}
    assert cases["cut in a chunk"] == {"data": ["a"], "error": "IncompleteRead"}
    assert cases["cut in the headers"] == {"data": [], "error": "IncompleteRead"}
    assert cases["content-length cut"] == {"data": [], "error": "IncompleteRead"}


def test_bad_chunk_framing_is_an_error(cases):
    for name in ("chunk without CRLF", "bad size line", "negative size"):
        assert cases[name] == {"data": [], "error": "HTTPException"}, name


def test_bodies_that_are_not_chunked(cases):
    assert cases["content-length"] == {"data": ["a"], "error": ""}
    assert cases["until close"] == {"data": ["a", "b"], "error": ""}
    assert cases["read limit"] == {"status": 500, "body": "abcde"}
