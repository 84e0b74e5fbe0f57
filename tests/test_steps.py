"""Resumable upstream calls (upstream/steps.py): a call waited on in slices of time keeps its place
(a half-read head included) on the caller's own thread, gives up after its read timeout however
it is sliced, and closes its connection when abandoned. Against a raw socket server."""
import threading
import time

import pytest

from backend_to_api.errors import UpstreamError
from backend_to_api.upstream.body import UpstreamBody
from backend_to_api.upstream.steps import Deadline, ResumableCall, in_thread

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
    assert exchange.head.status == 200 and exchange.head.framing.chunked
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


def test_the_read_timeout_holds_however_the_waits_are_sliced(upstream):
    _, pool = upstream(lambda conn: time.sleep(2.0))
    deadline = Deadline()
    steps = pool.exchange("POST", "/c", {}, b"", 0.5, deadline)
    started = time.monotonic()
    with pytest.raises(TimeoutError):  # as it comes: the client's wrap_transport_errors makes it a 504
        while True:
            deadline.at = time.monotonic() + 0.05
            next(steps)
    assert 0.45 <= time.monotonic() - started < 1.0


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
    assert len(pool._idle) == 0


def test_a_call_in_a_thread_returns_raises_and_closes_what_comes_too_late():
    deadline = Deadline()
    deadline.at = time.monotonic() + 1.0
    steps = in_thread(lambda: "answer", print, deadline)
    with pytest.raises(StopIteration) as done:
        while True:
            next(steps)
    assert done.value.value == "answer"

    failing = ResumableCall(lambda d: in_thread(lambda: 1 / 0, print, d))
    with pytest.raises(UpstreamError) as failure:  # a bug in the call: a 502, logged
        while failing.wait(0.05) is None:
            pass
    assert failure.value.status == 502

    closed, release = [], threading.Event()

    def slow():
        release.wait(2.0)
        return "late answer"

    late = ResumableCall(lambda d: in_thread(slow, closed.append, d))
    assert late.wait(0.05) is None
    late.abandon()
    release.set()
    deadline_wait = time.monotonic() + 2.0
    while not closed and time.monotonic() < deadline_wait:
        time.sleep(0.01)
    assert closed == ["late answer"]
