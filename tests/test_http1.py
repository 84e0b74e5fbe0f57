"""Our HTTP/1.1 exchange for the conversation call (upstream/http1.py, h11 over our own socket): the
request it writes, the heads it accepts and refuses, which connections it keeps, and that a request
is never written twice, against a raw socket server."""
import os
import ssl
import time

import pytest

from backend_to_api.errors import ApiError, UpstreamError
from backend_to_api.upstream.body import UpstreamBody
from backend_to_api.upstream.http1 import ConnectionPool
from backend_to_api.upstream.steps import Deadline

from .conftest import TLS_CERT
from .raw_http import RawServer, chunked, read_all, send

EVENTS = [b"data: {\"n\": 1}\n\n", b"data: [DONE]\n\n"]
CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def exchange(pool, path, body, read_timeout, headers=None):
    """One exchange, its steps given 5 s (the transport errors come out as they are raised)."""
    deadline = Deadline()
    deadline.at = time.monotonic() + 5.0
    steps = pool.exchange("POST", path, headers or {}, body, read_timeout, deadline)
    with pytest.raises(StopIteration) as answered:
        next(steps)
    return answered.value.value


def call(pool, headers=None):
    answered = exchange(pool, "/prefix/backend-api/conversation", b'{"a": 1}', 2.0,
                        headers or {"Authorization": "Bearer t"})
    return UpstreamBody.from_exchange(answered, pool)


def test_the_request_on_the_wire(upstream):
    server, pool = upstream(send(CHUNKED + chunked(EVENTS)))
    assert read_all(call(pool, {"Authorization": "Bearer t", "Accept": "text/event-stream"})) == b"".join(EVENTS)
    assert server.requests == [
        b"POST /prefix/backend-api/conversation HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer t\r\n"
        b"Accept: text/event-stream\r\nContent-Length: 8\r\n\r\n{\"a\": 1}" % server.port
    ]


def test_host_header_leaves_out_a_default_port_and_credentials():
    assert ConnectionPool("https://user:pw@chat.example:443/x", 1, None, 1).host_header == "chat.example"
    assert ConnectionPool("http://chat.example:80", 1, None, 1).host_header == "chat.example"
    assert ConnectionPool("http://chat.example:8080", 1, None, 1).host_header == "chat.example:8080"
    assert ConnectionPool("http://[::1]:8080", 1, None, 1).host_header == "[::1]:8080"
    pool = ConnectionPool("https://[::1]/", 1, None, 1)
    assert (pool.host, pool.port, pool.host_header) == ("::1", 443, "[::1]")


def test_a_line_break_in_a_header_never_reaches_the_wire(upstream):
    server, pool = upstream(send(CHUNKED + chunked(EVENTS)))
    with pytest.raises(ApiError) as refused:
        call(pool, {"Authorization": "Bearer t\r\nX-Injected: 1"})
    assert refused.value.status == 400
    assert server.requests == []


def test_a_header_value_h11_refuses_is_a_400_that_does_not_repeat_it(upstream):
    server, pool = upstream(send(CHUNKED + chunked(EVENTS)))
    with pytest.raises(ApiError) as refused:
        call(pool, {"Authorization": "Bearer secret-token\t"})
    assert refused.value.status == 400 and "secret-token" not in refused.value.message
    assert server.requests == []


def test_interim_answers_are_skipped_and_lf_only_heads_read(upstream):
    early_hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    lf_only = b"HTTP/1.1 200 OK\nContent-Type: text/event-stream\nTransfer-Encoding: chunked\n\n"
    _, pool = upstream(send(early_hints + lf_only + chunked(EVENTS)))
    body = call(pool)
    assert body.status == 200 and body.headers["content-type"] == "text/event-stream"
    assert read_all(body) == b"".join(EVENTS)


def head_of(raw):
    """The head our exchange reads from a server that answers ``raw`` (then closes)."""
    server = RawServer([send(raw, then="close")])
    try:
        pool = ConnectionPool(server.url, 2.0, None, max_idle=1)
        return exchange(pool, "/c", b"", 2.0).head
    finally:
        server.close()


def test_head_parsing():
    head = head_of(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nX-A: 1\r\nx-a: 2\r\n"
                   b"X-Folded: one\r\n  two\r\nContent-Length: 3\r\n\r\nabc")
    assert head.status == 429
    assert head.headers["retry-after"] == "7" and head.headers["X-A"] == "1, 2"
    assert head.headers["X-Folded"] == "one two"
    assert head_of(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").status == 200  # no reason phrase


@pytest.mark.parametrize("raw", [
    b"HTTP/2 200 OK",
    b"ICY 200 OK",
    b"HTTP/1.1 2000 OK",
    b"HTTP/1.1 OK",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2",
    b"HTTP/1.1 200 OK\r\nContent-Length: \xb2",  # a digit to str.isdigit(), not to HTTP
    b"HTTP/1.1 200 OK\r\nContent-Length: -1",
    b"HTTP/1.1 200 OK\r\nnot a header",
    b"HTTP/1.1 101 Switching Protocols",  # nothing was asked to switch
])
def test_malformed_heads_are_a_bad_stream(raw):
    with pytest.raises(UpstreamError) as failure:
        head_of(raw + b"\r\n\r\n")
    assert failure.value.status == 502 and failure.value.code == "bad_stream"


def test_a_head_that_never_ends_is_refused(upstream):
    _, pool = upstream(send(b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70000 + b"\r\n"))
    with pytest.raises(UpstreamError) as failure:
        call(pool)
    assert failure.value.code == "bad_stream"


def test_a_server_that_closes_without_answering(upstream):
    server, pool = upstream(send(then="close"), send(CHUNKED + chunked(EVENTS)))
    with pytest.raises(UpstreamError) as failure:
        call(pool)
    assert failure.value.status == 502 and failure.value.code == "upstream_disconnected"
    assert len(server.requests) == 1  # a new connection: not sent again


def test_a_kept_connection_closed_under_the_request_is_not_sent_again(upstream):
    # The second request goes out on the kept connection, which the server then closes unanswered
    # (an idle close that crossed the request, or a server that took it and died): the server may
    # have acted on it, so it is a 502 and never sent again.
    server, pool = upstream(send(CHUNKED + chunked(EVENTS)), send(then="close"), send(CHUNKED + chunked(EVENTS)))
    assert read_all(call(pool)) == b"".join(EVENTS)
    with pytest.raises(UpstreamError) as failure:
        call(pool)
    assert failure.value.status == 502 and failure.value.code == "upstream_disconnected"
    assert server.connections == 1 and len(server.requests) == 2


def test_a_shorter_keep_alive_the_server_announces_is_kept_to(upstream):
    announced = CHUNKED.replace(b"\r\n\r\n", b"\r\nKeep-Alive: timeout=2\r\n\r\n")
    server, pool = upstream(*[send(announced + chunked(EVENTS)) for _ in range(3)])
    assert read_all(call(pool)) == b"".join(EVENTS)
    assert read_all(call(pool)) == b"".join(EVENTS)  # at once: the kept one
    assert server.connections == 1
    time.sleep(1.2)  # past timeout=2 less our second of margin (our own limit is 15 s)
    assert read_all(call(pool)) == b"".join(EVENTS)
    assert server.connections == 2


def test_a_kept_connection_cut_in_the_middle_of_an_answer_is_not_retried(upstream):
    server, pool = upstream(send(CHUNKED + chunked(EVENTS)), send(b"HTTP/1.1 200 OK\r\nContent-", then="close"),
                            send(CHUNKED + chunked(EVENTS)))
    assert read_all(call(pool)) == b"".join(EVENTS)
    with pytest.raises(UpstreamError) as failure:
        call(pool)
    assert failure.value.code == "upstream_disconnected" and len(server.requests) == 2


def test_a_connection_the_server_closed_while_idle_is_not_used_again(upstream):
    server, pool = upstream(send(CHUNKED + chunked(EVENTS), then="close"), send(CHUNKED + chunked(EVENTS)))
    assert read_all(call(pool)) == b"".join(EVENTS)
    time.sleep(0.2)  # the server has closed the connection the pool keeps
    assert read_all(call(pool)) == b"".join(EVENTS)
    assert server.connections == 2


def test_a_tls_connection_is_kept_until_the_server_closes_it():
    # The idle check under TLS reads (an SSLSocket takes no peek): an open idle connection must
    # pass it, one the server closed must not (else the request is lost on it: a 502).
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS_CERT, os.path.join(os.path.dirname(TLS_CERT), "key.pem"))
    server = RawServer([send(CHUNKED + chunked(EVENTS)), send(CHUNKED + chunked(EVENTS), then="close"),
                        send(CHUNKED + chunked(EVENTS))], tls=context)
    try:
        pool = ConnectionPool(server.url, 2.0, TLS_CERT, max_idle=4)
        for _ in range(2):
            assert read_all(call(pool)) == b"".join(EVENTS)
        time.sleep(0.2)  # the server has closed the connection the pool keeps
        assert read_all(call(pool)) == b"".join(EVENTS)
        assert server.connections == 2 and len(server.requests) == 3
    finally:
        server.close()


def test_kept_connections_serve_in_turn(upstream):
    server, pool = upstream(*[send(CHUNKED + chunked(EVENTS)) for _ in range(3)])
    for _ in range(3):
        assert read_all(call(pool)) == b"".join(EVENTS)
    assert server.connections == 1


def test_no_more_idle_connections_are_kept_than_allowed(upstream):
    server, pool = upstream(*[send(CHUNKED + chunked(EVENTS)) for _ in range(3)])
    pool = ConnectionPool(f"http://127.0.0.1:{server.port}", 2.0, None, max_idle=1)
    first, second = call(pool), call(pool)  # two at once: two connections
    assert read_all(first) == read_all(second) == b"".join(EVENTS)
    assert pool.idle_count() == 1  # the second one given back was closed
    assert read_all(call(pool)) == b"".join(EVENTS)
    assert server.connections == 2


def test_an_http_1_0_answer_is_read_to_the_close_and_not_reused(upstream):
    old = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + b"".join(EVENTS)
    server, pool = upstream(send(old, then="close"), send(CHUNKED + chunked(EVENTS)))
    assert read_all(call(pool)) == b"".join(EVENTS)
    assert read_all(call(pool)) == b"".join(EVENTS)
    assert server.connections == 2


def test_an_error_body_is_read_for_its_message(upstream):
    error = b'{"detail": "Too many requests in 1 hour."}'
    _, pool = upstream(send(b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(error) + error))
    body = call(pool)
    assert body.status == 429 and body.read_text() == error.decode()


def test_unreachable_and_silent_upstreams_raise_transport_errors():
    """A request that never left is a plain transport error; one written and never answered is
    ours, marked posted (the upstream may have acted on it: no other pool token may resend it)."""
    closed = ConnectionPool("http://127.0.0.1:9", 1.0, None, 1)  # the discard port: nobody listens
    with pytest.raises(ConnectionRefusedError):
        exchange(closed, "/c", b"", 1.0)
    server = RawServer([lambda conn: time.sleep(1.0)])
    try:
        silent = ConnectionPool(f"http://127.0.0.1:{server.port}", 1.0, None, 1)
        started = time.monotonic()
        with pytest.raises(UpstreamError) as raised:
            exchange(silent, "/c", b"", 0.3)
        assert time.monotonic() - started < 0.9
        assert raised.value.status == 504 and raised.value.turn_posted
        assert isinstance(raised.value.__cause__, TimeoutError)
    finally:
        server.close()


def test_a_ca_folder_is_accepted_as_well_as_a_ca_file(tmp_path):
    # requests takes either for REQUESTS_CA_BUNDLE; neither may stop a worker from starting
    assert ConnectionPool("https://chat.example", 1, str(tmp_path), 1)._tls is not None
    assert ConnectionPool("https://chat.example", 1, None, 1)._tls is not None


def test_connections_idle_past_the_limit_are_closed(upstream):
    server, _ = upstream(*[send(CHUNKED + chunked(EVENTS)) for _ in range(3)])
    pool = ConnectionPool(f"http://127.0.0.1:{server.port}", 2.0, None, max_idle=4, idle_limit=0.3)
    first, second = call(pool), call(pool)
    assert read_all(first) == read_all(second) == b"".join(EVENTS)
    kept = [connection.sock for connection in list(pool._idle)]
    assert len(kept) == 2
    time.sleep(0.5)
    assert read_all(call(pool)) == b"".join(EVENTS)  # on a new connection: both kept ones were too old
    assert server.connections == 3 and all(sock.fileno() == -1 for sock in kept)
