"""Reading an upstream reply body: framing (h11's, driven by our read loop), timeouts per read,
connections reused only when clean.

The first half reads chunked bodies, good and bad, over a socket pair; the HTTP half runs
UpstreamBody over a real socket server (written here, threads and raw bytes, so every framing
case, including the broken ones, can be sent exactly).
"""
import gzip
import time

import socket

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend_to_api.errors import UpstreamError
from backend_to_api.sse.events import StreamEnd
from backend_to_api.upstream.body import UpstreamBody
from backend_to_api.upstream.http1 import Connection, ConnectionPool, read_head
from backend_to_api.upstream.reply import ReplyStream
from backend_to_api.upstream.steps import Deadline, ResumableCall

from .raw_http import RawServer, chunked, read_all, send


def body_from(raw, head=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"):
    """An UpstreamBody over one end of a socket pair whose other end has sent ``head + raw`` and
    closed: h11's framing as our read loop drives it, without a server."""
    ours, theirs = socket.socketpair()
    connection = Connection(ours, 4.0)
    ours.sendall(connection.protocol.send(h11.Request(method="POST", target="/", headers=[("Host", "x")]))
                 + connection.protocol.send(h11.EndOfMessage()))
    theirs.sendall(head + raw)
    theirs.close()
    deadline = Deadline()
    deadline.at = time.monotonic() + 2.0
    head_steps = read_head(ours, connection.protocol, 2.0, deadline)
    with pytest.raises(StopIteration) as answered:
        next(head_steps)
    return UpstreamBody(answered.value.value.status, answered.value.value.headers, connection, None)


@settings(max_examples=100, deadline=None)
@given(pieces=st.lists(st.binary(min_size=1, max_size=300), max_size=8),
       # h11 refuses whitespace before ";" (RFC 9112 allows it as BWS; no server we know sends it)
       extension=st.sampled_from([b"", b";name=value", b";a=\"b\""]),
       trailers=st.sampled_from([b"", b"X-Check: 1\r\n", b"A: 1\r\nB: 2\r\n"]),
       upper=st.booleans())
def test_any_chunked_body_decodes_to_its_payload(pieces, extension, trailers, upper):
    assert read_all(body_from(chunked(pieces, extension, trailers, upper))) == b"".join(pieces)


@pytest.mark.parametrize("body", [
    b"0x5\r\nhello\r\n0\r\n\r\n",    # int(..., 16) would take these three
    b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n",
    b"+5\r\nhello\r\n0\r\n\r\n",
    b"zz\r\n",
    b"\r\n",                          # an empty size line
    b"3\r\nhello\r\n",                # data longer than its size
    b"1" * 21 + b"\r\n",              # a size line longer than h11 takes
])
def test_bad_framing_is_a_bad_stream(body):
    with pytest.raises(UpstreamError) as failure:
        read_all(body_from(body))
    assert failure.value.status == 502 and failure.value.code == "bad_stream"


# --- over real HTTP -------------------------------------------------------------------------------

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
EVENTS = [b"data: {\"n\": 1}\n\n", b"data: \xf0\x9f\x8c\x8d\n\n", b"data: [DONE]\n\n"]


class DirectPool:
    """Our own exchange (every conversation call when no proxy applies)."""

    def __init__(self, port):
        self.pool = ConnectionPool(f"http://127.0.0.1:{port}", 2.0, None, max_idle=4)

    def open(self):
        exchange = ResumableCall(lambda deadline: self.pool.exchange(
            "POST", "/c", {"Content-Type": "application/json"}, b"{}", 2.0, deadline)).wait(5.0)
        return UpstreamBody.from_exchange(exchange, self.pool)


@pytest.fixture(params=[DirectPool], ids=["direct"])
def serve(request):
    servers = []

    def start(*responses):
        server = RawServer(responses)
        servers.append(server)
        return server, request.param(server.port)

    yield start
    for server in servers:
        server.close()


def open_body(pool):
    return pool.open()


def test_a_cleanly_read_reply_gives_its_connection_back(serve):
    body = chunked(EVENTS)
    server, pool = serve(send(CHUNKED + body[:7], body[7:30], body[30:], pause=0.05), send(CHUNKED + body))
    assert read_all(open_body(pool)) == b"".join(EVENTS)
    assert read_all(open_body(pool)) == b"".join(EVENTS)
    assert server.connections == 1


def test_a_reply_cut_mid_chunk_is_an_upstream_disconnect_and_not_reused(serve):
    body = chunked(EVENTS)
    server, pool = serve(send(CHUNKED + body[:20], then="close"), send(CHUNKED + body))
    reply = open_body(pool)
    with pytest.raises(UpstreamError) as failure:
        read_all(reply)
    assert failure.value.status == 502 and failure.value.code == "upstream_disconnected"
    assert read_all(open_body(pool)) == b"".join(EVENTS)
    assert server.connections == 2


def test_chunks_split_around_their_crlf_are_read_whole_and_keep_the_connection(serve):
    # A whole chunk with at most its CRLF after it ends a read without asking h11 again (body.py,
    # _CHUNK_TAILS); the CRLF, or its half, or the last chunk coming in the next write must still
    # be read right, and the body still end cleanly.
    first, second, third = EVENTS
    writes = [CHUNKED + b"%x\r\n" % len(first) + first, b"\r\n",
              b"%x\r\n" % len(second) + second + b"\r", b"\n%x\r\n" % len(third) + third + b"\r\n",
              b"0\r\n\r\n"]
    server, pool = serve(send(*writes, pause=0.05), send(CHUNKED + chunked(EVENTS)))
    assert read_all(open_body(pool)) == b"".join(EVENTS)
    assert read_all(open_body(pool)) == b"".join(EVENTS)
    assert server.connections == 1


def test_bad_chunk_framing_is_a_bad_stream(serve):
    _, pool = serve(send(CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n"))
    with pytest.raises(UpstreamError) as failure:
        read_all(open_body(pool))
    assert failure.value.code == "bad_stream"


def test_content_length_and_close_delimited_bodies(serve):
    payload = b"".join(EVENTS)
    sized = HEAD + b"Content-Length: %d\r\n\r\n" % len(payload) + payload
    unsized = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + payload
    server, pool = serve(send(sized), send(sized), send(unsized, then="close"))
    assert read_all(open_body(pool)) == payload
    assert read_all(open_body(pool)) == payload
    assert read_all(open_body(pool)) == payload
    assert server.connections == 1


def test_an_empty_body_ends_at_once(serve):
    empty = HEAD + b"Content-Length: 0\r\n\r\n"
    server, pool = serve(send(empty), send(CHUNKED + chunked(EVENTS)))
    reply = open_body(pool)
    started = time.monotonic()
    assert reply.read(2.0) == b"" and time.monotonic() - started < 0.5
    reply.close()
    assert read_all(open_body(pool)) == b"".join(EVENTS)
    assert server.connections == 1


def test_a_compressed_reply_is_decoded(serve):
    packed = gzip.compress(b"".join(EVENTS))
    head = CHUNKED.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")
    _, pool = serve(send(head + chunked([packed[:10], packed[10:]])))
    assert read_all(open_body(pool)) == b"".join(EVENTS)


def test_a_silent_upstream_times_a_read_out_and_the_body_goes_on(serve):
    first, rest = chunked([b"data: 1\n\n"])[:14], chunked([b"data: 1\n\n", b"data: 2\n\n"])[14:]
    server, pool = serve(send(CHUNKED + first, rest, pause=0.8))
    reply = open_body(pool)
    started = time.monotonic()
    assert reply.read(0.3) == b"data: 1\n\n"  # it came with the headers: no wait for the socket
    assert time.monotonic() - started < 0.2
    assert reply.read(0.3) is None            # then 0.8 s of silence
    assert read_all(reply) == b"data: 2\n\n"
    assert server.connections == 1


def test_a_half_read_body_closes_its_connection(serve):
    body = chunked(EVENTS)
    server, pool = serve(send(CHUNKED + body[:25], body[25:], pause=0.5), send(CHUNKED + body))
    reply = open_body(pool)
    assert reply.read(2) == EVENTS[0]
    reply.close()
    assert read_all(open_body(pool)) == b"".join(EVENTS)
    assert server.connections == 2


def test_bytes_after_the_end_keep_the_connection_from_reuse(serve):
    server, pool = serve(send(CHUNKED + chunked(EVENTS) + b"junk"), send(CHUNKED + chunked(EVENTS)))
    assert read_all(open_body(pool)) == b"".join(EVENTS)
    assert read_all(open_body(pool)) == b"".join(EVENTS)
    assert server.connections == 2


def test_an_unknown_content_encoding_is_refused(serve):
    head = CHUNKED.replace(b"\r\n\r\n", b"\r\nContent-Encoding: br\r\n\r\n")
    _, pool = serve(send(head + chunked(EVENTS)))
    with pytest.raises(UpstreamError) as failure:
        read_all(open_body(pool))
    assert failure.value.code == "bad_stream"


# --- an upstream that cuts the connection right after [DONE] --------------------------------------

ANSWER_FRAMES = (
    b'data: {"message": {"id": "m1", "author": {"role": "assistant"}, "content": {"content_type": "text", '
    b'"parts": ["Hello there"]}, "status": "finished_successfully", "end_turn": true, "recipient": "all", '
    b'"metadata": {"finish_details": {"type": "stop"}}}, "conversation_id": "c1", "error": null}\n\n',
    b"data: [DONE]\n\n",
)
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.sig"  # used as is: no token exchange


def test_a_body_cut_after_done_still_completes(start_proxy):
    # Both frames, then the connection closes without chunked HTTP's last chunk: the reply was
    # whole, so neither a stream nor a completion may turn into an error.
    cut = CHUNKED + chunked(ANSWER_FRAMES)[:-5]
    upstream = RawServer([send(cut, then="close"), send(cut, then="close")])
    try:
        proxy = start_proxy({"UPSTREAM_BASE_URL": f"http://127.0.0.1:{upstream.port}"})
        client = proxy.client(api_key=JWT)
        chunks = list(client.chat.completions.create(model="gpt-4o", stream=True,
                                                     messages=[{"role": "user", "content": "hi"}]))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello there"
        assert chunks[-1].choices[0].finish_reason == "stop"
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello there"
    finally:
        upstream.close()


def _reply_from(pool):
    """A ReplyStream whose upstream call is ``pool.open()``."""
    def steps(deadline):
        yield from ()
        return pool.open()

    return ReplyStream(steps, read_timeout=5.0)


def _read_to_done(reply):
    events = []
    while not any(isinstance(event, StreamEnd) for event in events):
        batch = reply.next_events(2.0)
        assert isinstance(batch, list), batch
        events += batch


@pytest.mark.parametrize("end_is_here", [True, False])
def test_the_last_chunk_after_done_keeps_the_connection_if_it_is_already_here(serve, end_is_here):
    # [DONE] comes in one write, the last chunk 0.3 s later in another. A reply closed after the
    # last chunk has arrived (unread) reads it then and gives the connection back; one closed before
    # does not wait for it and closes the connection.
    body = chunked([b"data: [DONE]\n\n"])
    cut = body.index(b"0\r\n\r\n")
    server, pool = serve(send(CHUNKED + body[:cut], body[cut:], pause=0.3), send(CHUNKED + body))
    reply = _reply_from(pool)
    _read_to_done(reply)
    if end_is_here:
        time.sleep(0.6)
    started = time.monotonic()
    reply.close()
    assert time.monotonic() - started < 0.1
    assert read_all(open_body(pool)) == b"data: [DONE]\n\n"
    assert server.connections == (1 if end_is_here else 2)
