"""Resumable upstream calls (upstream/steps.py): a call waited on in slices of time keeps its place
(a half-read head included) on the caller's own thread, gives up after its read timeout however
it is sliced, and closes its connection when abandoned. Against a raw socket server."""
import socket
import threading
import time

import pytest

from backend_to_api.errors import UpstreamError
from backend_to_api.upstream.body import UpstreamBody
from backend_to_api.upstream.http1 import ConnectionPool
from backend_to_api.upstream.steps import Deadline, ResumableCall

from .raw_http import chunked, read_all, send
from .test_http1 import CHUNKED as HEAD
from .test_http1 import EVENTS

def conversation(pool, read_timeout=5.0):
    return ResumableCall(lambda deadline: pool.exchange("POST", "/c", {}, b"{}", read_timeout, deadline))


def wait_until_answered(call, slice_=0.05, limit=5.0):
    """Wait in slices; returns (the answer, how many slices came back empty)."""
    empty, deadline = 0, time.monotonic() + limit
    while time.monotonic() < deadline:
        answer = call.wait(slice_)
        if answer is not None:
            return answer, empty
        empty += 1
    raise AssertionError("no answer")


def test_a_late_head_split_in_pieces_is_read_across_many_waits(upstream):
    # The head comes in three pieces 0.3 s apart: the waits in between come back empty and the
    # bytes already read are kept for the next one.
    _, pool = upstream(send(HEAD[:20], HEAD[20:50], HEAD[50:] + chunked(EVENTS), pause=0.3))
    started = time.monotonic()
    exchange, empty = wait_until_answered(conversation(pool))
    assert time.monotonic() - started >= 0.55 and empty >= 8
    assert exchange.head.status == 200 and exchange.head.headers["transfer-encoding"] == "chunked"
    assert read_all(UpstreamBody.from_exchange(exchange, pool)) == b"".join(EVENTS)


def test_a_wait_of_zero_comes_back_at_once(upstream):
    _, pool = upstream(send(HEAD + chunked(EVENTS), pause=0.0))
    call = conversation(pool)
    started = time.monotonic()
    assert call.wait(0.0) is None
    assert time.monotonic() - started < 0.05
    exchange, _ = wait_until_answered(call)
    assert exchange.head.status == 200
    UpstreamBody.from_exchange(exchange, pool).close()


def assert_times_out_in_slices(pool, read_timeout=5.0):
    """An exchange through ``pool``, driven in 0.05 s slices, keeps coming back empty until it
    times out at 0.5 s (the connect or the read timeout, whichever the test set to 0.5). A connect
    timeout comes as it is (the client's wrap_transport_errors makes it a 504); a request written
    and never answered is already our 504, marked posted."""
    deadline = Deadline()
    steps = pool.exchange("POST", "/c", {}, b"", read_timeout, deadline)
    empty, started = 0, time.monotonic()
    with pytest.raises((TimeoutError, UpstreamError)) as raised:
        while True:
            deadline.at = time.monotonic() + 0.05
            next(steps)
            empty += 1
    assert empty >= 5 and 0.45 <= time.monotonic() - started < 1.0
    return raised.value


def test_the_read_timeout_holds_however_the_waits_are_sliced(upstream):
    _, pool = upstream(lambda conn: time.sleep(2.0))
    error = assert_times_out_in_slices(pool, read_timeout=0.5)
    assert isinstance(error, UpstreamError) and error.status == 504 and error.turn_posted


def test_an_abandoned_call_closes_its_connection(upstream):
    closed = threading.Event()

    def never_answer(conn):
        conn.settimeout(5)
        if conn.recv(1) == b"":  # the proxy side closed
            closed.set()
        return "close"

    _, pool = upstream(never_answer)
    call = conversation(pool)
    assert call.wait(0.2) is None
    call.abandon()
    assert closed.wait(2.0)
    assert pool.idle_count() == 0


class Blackhole:
    """A port whose connects hang: its one-place accept queue is already full (Linux then drops
    the SYNs of further connects)."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port))

    def close(self):
        self.filler.close()
        self.listener.close()


class SilentServer:
    """Accepts connections and never says a word; notes when a connection is closed by the peer."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"  # as a Proxy's upstream (set https to make it a TLS one)
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        try:
            while conn.recv(65536):  # a TLS ClientHello comes, then nothing until the close
                pass
        except OSError:
            pass
        self.closed.set()

    def close(self):
        self.listener.close()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_connect_that_hangs_yields_in_slices_and_times_out(scheme):
    # https too: the TCP connect hangs before any TLS.
    hole = Blackhole()
    try:
        assert_times_out_in_slices(ConnectionPool(f"{scheme}://127.0.0.1:{hole.port}", 0.5, None, max_idle=1))
    finally:
        hole.close()


def test_a_tls_handshake_that_stalls_yields_times_out_and_closes_when_abandoned():
    server = SilentServer()
    try:
        assert_times_out_in_slices(ConnectionPool(f"https://127.0.0.1:{server.port}", 0.5, None, max_idle=1))
        assert server.closed.wait(2.0)  # the socket of the failed handshake was closed
    finally:
        server.close()

    server = SilentServer()
    try:
        pool = ConnectionPool(f"https://127.0.0.1:{server.port}", 5.0, None, max_idle=1)
        call = ResumableCall(lambda d: pool.exchange("POST", "/c", {}, b"", 5.0, d))
        assert call.wait(0.2) is None
        call.abandon()
        assert server.closed.wait(2.0)
    finally:
        server.close()
