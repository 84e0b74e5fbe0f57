"""A client that leaves while the request is still setting up its upstream side (issue 14 item 4):
the WebSocket's lookup (celsius/ws/user, register-websocket) and the conduit flow's prepares are
small blocking calls, bounded by their timeouts; when one returns, the request looks at its client
before the next step, so one that left gets no WebSocket dialed and no conversation posted, and
nothing stays open. Clients are raw sockets that send a chat and close without awaiting headers."""
from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from .conftest import directive
from .test_handoff_e2e import ANSWER, connections_since, handoff_records
from .test_handoff_edges_e2e import CELSIUS, REGISTER, calls_since, lookup_rule, subject

PREPARE = "/backend-api/f/conversation/prepare"


def raw_chat(proxy, key: str, body: dict) -> socket.socket:
    """A chat request written on a socket of our own (its headers not awaited), to be closed at will."""
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"Authorization: Bearer {key}\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def wait_for_call(emulator, path: str, since: float, timeout: float = 10.0) -> dict:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        calls = calls_since(emulator, path, since)
        if calls:
            return calls[0]
        time.sleep(0.05)
    raise AssertionError(f"{path} was not called within {timeout} s")


@pytest.mark.parametrize("emu, path", [("handoff_thinking", CELSIUS), ("wss_2024_register", REGISTER)])
def test_a_client_that_leaves_during_a_slow_lookup_gets_no_socket_opened(proxy, emulator, emu, path):
    key = subject("ws-leaver")
    lookup_rule(emulator, key, delay=1.5)
    before = len(handoff_records(emulator))
    since = time.time()
    sock = raw_chat(proxy, key, {"model": "gpt-4o", "stream": True,
                                 "messages": [{"role": "user", "content": directive(emu=emu, text=ANSWER)}]})
    wait_for_call(emulator, path, since)
    sock.close()  # gone while the lookup is still being answered
    time.sleep(1.5 + 1.5)  # the lookup's answer, then a tick or two of the request
    assert connections_since(emulator, before) == []  # it noticed before dialing: nothing to leak


def test_a_client_that_leaves_just_before_the_dial_leaves_no_socket_open(proxy, emulator):
    # The lookup answers 0.3 s after the client left: whether the request dials first (its tick had
    # time left) or notices first, no socket stays open more than a tick after the client left.
    key = subject("ws-leaver-late")
    lookup_rule(emulator, key, delay=0.3)
    before = len(handoff_records(emulator))
    since = time.time()
    sock = raw_chat(proxy, key, {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": directive(
        emu="handoff_silent", text="Started, then gone", hang=30)}]})
    wait_for_call(emulator, CELSIUS, since)
    left = time.time()
    sock.close()
    time.sleep(2.5)
    for connection in connections_since(emulator, before):
        assert connection["closed"] is not None and connection["closed"] - left < 1.5, connection


def test_a_client_that_leaves_during_a_slow_prepare_gets_no_conversation_posted(start_proxy, emulator):
    proxy = start_proxy({"CONVERSATION_FLOW": "conduit"})
    requests.post(emulator.url + "/_emulator/slow", json={"path": PREPARE, "delay": 1.5, "times": 1},
                  timeout=5).raise_for_status()
    since = time.time()
    try:
        sock = raw_chat(proxy, subject("prepare-leaver"), {"model": "gpt-4o", "stream": True, "messages": [
            {"role": "user", "content": directive(text=ANSWER)}]})
        time.sleep(0.5)  # the first prepare is being waited for (1.5 s)
        sock.close()
        time.sleep(1.0 + 1.5)  # its answer, the other two prepares, a tick
        posts = calls_since(emulator, "/backend-api/f/conversation", since)
        prepares = calls_since(emulator, PREPARE, since)
    finally:
        proxy.stop()
    assert prepares and posts == []  # the turn was never posted: no message in the user's history
