"""The conversation call's own HTTP/1.1 exchange: the request out, the status line and headers in.

Every chat makes this call. Through urllib3 it cost ~0.6 ms of Python each time: http.client parses
the headers with the email package, and urllib3 wraps the answer in buffers the streaming read
never uses (UpstreamBody reads the socket itself). What is left to do is small: connect (TLS with
the same CA bundle and ``http/1.1`` ALPN urllib3 used), write one request, parse one head.
Connecting, the TLS handshake and reading the head are resumable steps (``steps.py``,
``socket_steps.py``), so the request waiting for them keeps its own ticks and can give the call up
half-way. Idle connections are kept for the next chat. Every other call, and this one when a proxy
applies, goes through requests (``client.py``).
"""
from __future__ import annotations

import _socket
import collections
import logging
import os
import re
import socket
import ssl
import threading
import time
from typing import Deque, List, Mapping, NamedTuple, Optional, Tuple
from urllib.parse import urlsplit

from urllib3 import HTTPHeaderDict

from ..errors import ApiError, UpstreamError
from .socket_steps import connect, handshake, receive
from .steps import Deadline, Steps

log = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")
_ILLEGAL_IN_HEADER = re.compile(r"[\r\n\x00]")
_DIGITS = re.compile(r"[0-9]+")  # str.isdigit() would take "²"


class Framing(NamedTuple):
    """How the body after the head is delimited."""

    chunked: bool
    length: Optional[int]  # with chunked False: the body's size; None: it ends when the server closes
    will_close: bool       # the server will not take another request on this connection


class ResponseHead(NamedTuple):
    status: int
    headers: HTTPHeaderDict
    framing: Framing


class Exchange(NamedTuple):
    """An answered request: its head, the open socket, and body bytes that came with the head."""

    head: ResponseHead
    sock: socket.socket
    early: bytes


# How long an idle connection is kept. Servers close theirs sooner or later (nginx after 75 s, Node
# and uvicorn after 5 s); one they closed would only hold a descriptor here until it is looked at.
IDLE_LIMIT = 60.0


class ConnectionPool:
    """Keep-alive connections to one upstream origin; the most recently used idle one is taken first.
    Thread-safe (gthread workers share one per process)."""

    def __init__(self, root: str, connect_timeout: float, ca_bundle: Optional[str], max_idle: int,
                 idle_limit: float = IDLE_LIMIT) -> None:
        parts = urlsplit(root)
        self.host = parts.hostname or ""
        default_port = 443 if parts.scheme == "https" else 80
        self.port = parts.port or default_port
        self.host_header = parts.netloc.rpartition("@")[2]
        if parts.port == default_port:
            self.host_header = self.host_header.rsplit(":", 1)[0]
        self.connect_timeout = connect_timeout
        self._tls = _tls_context(ca_bundle) if parts.scheme == "https" else None
        self._idle: Deque[Tuple[socket.socket, float]] = collections.deque()  # (connection, idle since)
        self._max_idle = max_idle
        self._idle_limit = idle_limit
        self._lock = threading.Lock()

    def exchange(self, method: str, path: str, headers: Mapping[str, str], body: bytes,
                 read_timeout: float, deadline: Deadline) -> Steps[Exchange]:
        """Send one request and read the head of its answer, in steps (``steps.py``): it yields
        whenever ``deadline`` passes before the head is complete. Transport errors are raised as
        they come (OSError, TimeoutError after ``read_timeout`` s of silence);
        ``errors.wrap_transport_errors`` turns them into ours."""
        request = _request_bytes(method, path, self.host_header, headers, body)
        sock = self._checkout()
        reused = sock is not None
        if sock is None:
            sock = yield from self._connect(deadline)
        try:
            return (yield from _send(sock, request, read_timeout, deadline))
        except (NoAnswer, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
        # The server closed this idle connection just as the request went out (its FIN crossed
        # our request), and nothing of an answer came: the request goes once more on a new
        # connection, as browsers do for a reused connection that fails before any answer.
        log.info("a kept-alive upstream connection was closed under the request; sending it again")
        return (yield from _send((yield from self._connect(deadline)), request, read_timeout, deadline))

    def give_back(self, sock: socket.socket) -> None:
        """A connection whose answer was read to its clean end, ready for the next request."""
        now = time.monotonic()
        with self._lock:
            stale = self._take_stale(now)
            keep = len(self._idle) < self._max_idle
            if keep:
                self._idle.append((sock, now))
        for old in stale + ([] if keep else [sock]):
            old.close()

    def _checkout(self) -> Optional[socket.socket]:
        """An idle connection that is still open, or None."""
        while True:
            with self._lock:
                stale = self._take_stale(time.monotonic())
                sock = self._idle.pop()[0] if self._idle else None
            for old in stale:
                old.close()
            if sock is None or _still_open(sock):
                return sock
            sock.close()

    def _take_stale(self, now: float) -> List[socket.socket]:
        """Idle connections past the limit (oldest first), out of the pool; under the lock."""
        stale = []
        while self._idle and now - self._idle[0][1] > self._idle_limit:
            stale.append(self._idle.popleft()[0])
        return stale

    def _connect(self, deadline: Deadline) -> Steps[socket.socket]:
        """A new connection, TLS included, in steps: the request keeps ticking while a slow or
        unreachable upstream takes its time (each of TCP and TLS within the connect timeout)."""
        sock = yield from connect(self.host, self.port, self.connect_timeout, deadline)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small requests, sent at once
            if self._tls is not None:
                sock = yield from handshake(self._tls, sock, self.host, self.connect_timeout, deadline)
        except BaseException:
            sock.close()
            raise
        return sock


def _send(sock: socket.socket, request: bytes, read_timeout: float, deadline: Deadline) -> Steps[Exchange]:
    try:
        sock.settimeout(read_timeout)
        sock.sendall(request)
        head, early = yield from read_head(sock, read_timeout, deadline)
    except BaseException:  # GeneratorExit too: an abandoned call closes its connection
        sock.close()
        raise
    return Exchange(head, sock, early)


def _tls_context(ca_bundle: Optional[str]) -> ssl.SSLContext:
    # REQUESTS_CA_BUNDLE may name a file or, as requests also accepts, a hashed certificate folder
    if ca_bundle and os.path.isdir(ca_bundle):
        context = ssl.create_default_context(capath=ca_bundle)
    else:
        context = ssl.create_default_context(cafile=ca_bundle)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _still_open(sock: socket.socket) -> bool:
    """An idle connection with anything to read (the server's FIN, a TLS close_notify) is spent.
    One non-blocking peek at the raw socket: under gevent, urllib3's poll() for the same question
    builds and tears down a watcher each time."""
    sock.settimeout(0.0)
    raw = getattr(sock, "_sock", sock)  # gevent keeps the real socket there; TLS records are peeked raw
    try:
        _socket.socket.recv(raw, 1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _request_bytes(method: str, path: str, host: str, headers: Mapping[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if _ILLEGAL_IN_HEADER.search(value):
            # e.g. a client key with a line break: it must never split our request
            raise ApiError(400, f"The {name} header would contain a line break or NUL.", "invalid_request_error")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


# --- the answer's head ---------------------------------------------------------------------------

class NoAnswer(UpstreamError):
    """The connection ended before a single byte of an answer."""

    def __init__(self) -> None:
        super().__init__(502, "The upstream closed the connection without answering.", code="upstream_disconnected")


def read_head(sock: socket.socket, read_timeout: float, deadline: Deadline) -> Steps[Tuple[ResponseHead, bytes]]:
    """The final head (1xx interim answers are skipped) and the body bytes read past it."""
    buffer = yield from _first_bytes(sock, read_timeout, deadline)
    while True:
        raw, buffer = yield from _read_until_head_end(sock, buffer, read_timeout, deadline)
        head = parse_head(raw)
        if not (100 <= head.status < 200) or head.status == 101:
            return head, buffer


def _first_bytes(sock: socket.socket, read_timeout: float, deadline: Deadline) -> Steps[bytes]:
    try:
        data = yield from receive(sock, deadline, read_timeout)
    except ConnectionResetError as exc:
        raise NoAnswer() from exc
    if not data:
        raise NoAnswer()
    return data


def _read_until_head_end(sock: socket.socket, buffer: bytes, read_timeout: float,
                         deadline: Deadline) -> Steps[Tuple[bytes, bytes]]:
    searched = 0
    while True:
        end = _HEAD_END.search(buffer, searched)
        if end is not None:
            return buffer[:end.start()], buffer[end.end():]
        if len(buffer) > MAX_HEAD:
            raise bad_head(f"no end of the headers in the first {MAX_HEAD} bytes")
        searched = max(0, len(buffer) - 3)
        data = yield from receive(sock, deadline, read_timeout)
        if not data:
            raise UpstreamError(502, "The upstream closed the connection in the middle of its headers.",
                                code="upstream_disconnected")
        buffer += data


def parse_head(raw: bytes) -> ResponseHead:
    lines = _LINE_END.split(raw)
    version, status = _status_line(lines[0])
    headers = HTTPHeaderDict()
    name = None
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and name is not None:  # an obsolete folded continuation
            value = headers.pop(name) + " " + line.strip().decode("latin-1")
            headers.add(name, value)
            continue
        key, colon, value = line.partition(b":")
        if not colon:
            continue  # a line that is no header at all: http.client skips these too
        name = key.strip().decode("latin-1")
        headers.add(name, value.strip().decode("latin-1"))
    return ResponseHead(status, headers, _framing(version, status, headers))


def _status_line(line: bytes) -> Tuple[bytes, int]:
    version, _, rest = line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit() or rest[3:4] not in (b"", b" "):
        raise bad_head(f"status line {line[:80]!r}")
    return version, int(code)


def _framing(version: bytes, status: int, headers: HTTPHeaderDict) -> Framing:
    """RFC 9112 section 6.3, for a response to a POST."""
    tokens = {token.strip().lower() for token in headers.get("Connection", "").split(",")}
    will_close = "close" in tokens if version == b"HTTP/1.1" else "keep-alive" not in tokens
    if status < 200 or status in (204, 304):
        return Framing(False, 0, will_close)
    coding = headers.get("Transfer-Encoding")
    if coding is not None:
        if coding.split(",")[-1].strip().lower() == "chunked":
            return Framing(True, None, will_close)
        return Framing(False, None, True)
    length = headers.get("Content-Length")
    if length is None:
        return Framing(False, None, True)
    sizes = {size.strip() for size in length.split(",")}
    size = sizes.pop()
    if sizes or not _DIGITS.fullmatch(size):
        raise bad_head(f"Content-Length {length[:40]!r}")
    return Framing(False, int(size), will_close)


def bad_head(detail: str) -> UpstreamError:
    return UpstreamError(502, f"The upstream answered with a malformed HTTP head: {detail}.", code="bad_stream")
