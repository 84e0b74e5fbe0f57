"""The conversation call's own HTTP/1.1 exchange: our socket, h11's protocol.

Every chat makes this call. Through requests/urllib3 it cost ~0.6 ms of Python each time
(preparing, cookies, hooks, header parsing with the email package, buffers the streaming read never
uses). So we own the socket: connect (TLS with the same CA bundle and ``http/1.1`` ALPN urllib3
used), write one request, read one head, then the body (``body.py``). The HTTP/1.1 itself (request
framing, status line and headers, chunked/sized/close-delimited bodies, keep-alive) is h11's: one
``h11.Connection`` per socket, kept with it in the pool. Connecting, the TLS handshake and reading
the head are resumable steps (``steps.py``, ``socket_steps.py``), so the request waiting for them
keeps its own ticks and can give the call up half-way.

A request is written at most once: the conversation POST is not idempotent (a resend is a second
message in the user's ChatGPT history). A kept connection is checked before it is used; once the
request was written, any failure is the caller's 502.

Through an outbound proxy (``proxy_route.py``) the same exchange runs over a connection to the
proxy: a CONNECT tunnel for an https upstream, the absolute-form target for an http one.
"""
from __future__ import annotations

import collections
import logging
import os
import re
import socket
import ssl
import threading
import time
from typing import Deque, Dict, List, Mapping, NamedTuple, Optional
from urllib.parse import urlsplit

import h11
from urllib3 import HTTPHeaderDict

from ..errors import ApiError, UpstreamError
from .errors import transport_error
from .proxy_route import ProxyRoute
from .socket_steps import connect, handshake, receive
from .steps import Deadline, Steps

log = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024  # a head that does not end within this many bytes is not HTTP we read
_END = h11.EndOfMessage()  # an event is immutable: one for every request
_ILLEGAL_IN_HEADER = re.compile(r"[\r\n\x00]")
_KEEP_ALIVE_TIMEOUT = re.compile(r"(?:^|[,;\s])timeout\s*=\s*([0-9]+)", re.IGNORECASE)

# How long an idle connection is kept. A server closes an idle connection when it likes; if its
# close crosses our request, the request is lost and, never being sent twice, fails the chat (502).
# A close that came before we take the connection is seen at checkout (still_open), so the race is
# one round trip wide, and only at the server's limit. We stay a second under a limit the server
# announces (Keep-Alive: timeout=N, as Node's 5 s is), and under 15 s otherwise: below the limits of
# the proxies and CDNs in front of real upstreams (nginx 75 s, load balancers 60 s), long enough that
# workers taking turns still reuse their connections (4 s was not, on a loaded machine).
IDLE_LIMIT = 15.0


class Connection:
    """One connection to the upstream and the HTTP/1.1 state of the exchange on it."""

    __slots__ = ("sock", "protocol", "idle_since", "idle_limit")

    def __init__(self, sock: socket.socket, idle_limit: float) -> None:
        self.sock = sock
        self.protocol = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.idle_since = 0.0
        self.idle_limit = idle_limit

    def reusable(self) -> bool:
        """Both sides are done with a keep-alive exchange and nothing came after the answer."""
        protocol = self.protocol
        return (protocol.our_state is h11.DONE and protocol.their_state is h11.DONE
                and not protocol.trailing_data[0])


class ResponseHead(NamedTuple):
    status: int
    headers: HTTPHeaderDict


class Exchange(NamedTuple):
    """An answered request: its head and the connection its body is read from (h11 holds the
    body bytes that came with the head)."""

    head: ResponseHead
    connection: Connection


class ConnectionPool:
    """Keep-alive connections to one upstream origin; the most recently used idle one is taken first.
    Thread-safe (gthread workers share one per process)."""

    def __init__(self, root: str, connect_timeout: float, ca_bundle: Optional[str], max_idle: int,
                 idle_limit: float = IDLE_LIMIT, proxy: Optional[ProxyRoute] = None) -> None:
        parts = urlsplit(root)
        self.host = parts.hostname or ""
        default_port = 443 if parts.scheme == "https" else 80
        self.port = parts.port or default_port
        self.host_header = parts.netloc.rpartition("@")[2]
        if parts.port == default_port:
            self.host_header = self.host_header.rsplit(":", 1)[0]
        self.connect_timeout = connect_timeout
        self._tls = tls_context(ca_bundle) if parts.scheme == "https" else None
        self.proxy = proxy
        # A plain-http origin behind a proxy is asked for in absolute form, with the proxy's credentials.
        self._absolute = f"http://{self.host_header}" if proxy is not None and self._tls is None else ""
        # The fields every request starts with, and the header names we send, as bytes once: h11
        # takes bytes as they are and would encode a str on every call. The names are our own few.
        self._host_field = (b"Host", self.host_header.encode("ascii"))
        self._names: Dict[str, bytes] = {}
        self._idle: Deque[Connection] = collections.deque()
        self._max_idle = max_idle
        self._idle_limit = idle_limit
        self._lock = threading.Lock()

    def exchange(self, method: str, path: str, headers: Mapping[str, str], body: bytes,
                 read_timeout: float, deadline: Deadline) -> Steps[Exchange]:
        """Send one request (once) and read the head of its answer, in steps (``steps.py``): it
        yields whenever ``deadline`` passes before the head is complete. Transport errors are
        raised as they come (OSError, TimeoutError after ``read_timeout`` s of silence);
        ``errors.wrap_transport_errors`` turns them into ours."""
        request = self._request(method, path, headers, len(body))
        connection = self._checkout()
        if connection is None:
            connection = yield from self._connect(deadline)
        try:
            protocol = connection.protocol
            connection.sock.settimeout(read_timeout)
            connection.sock.sendall(protocol.send(request) + protocol.send(h11.Data(data=body))
                                    + protocol.send(_END))
        except BaseException:  # GeneratorExit too: an abandoned call closes its connection
            connection.sock.close()
            raise
        try:
            head = yield from read_head(connection.sock, protocol, read_timeout, deadline)
        except BaseException as exc:
            connection.sock.close()
            raise _sent(exc)
        connection.idle_limit = _idle_limit(head.headers, self._idle_limit)
        return Exchange(head, connection)

    def give_back(self, connection: Connection) -> None:
        """A connection whose answer was read to its clean end, ready for the next request."""
        connection.protocol.start_next_cycle()
        now = time.monotonic()
        connection.idle_since = now
        with self._lock:
            stale = self._take_stale(now)
            keep = len(self._idle) < self._max_idle
            if keep:
                self._idle.append(connection)
        for old in stale + ([] if keep else [connection]):
            old.sock.close()

    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)

    def _request(self, method: str, path: str, headers: Mapping[str, str], size: int) -> h11.Request:
        fields = [self._host_field]
        if self._absolute and self.proxy is not None:
            fields += self.proxy.headers
        names = self._names
        for name, value in headers.items():
            raw_name = names.get(name) or names.setdefault(name, name.encode("ascii"))
            fields.append((raw_name, value.encode("latin-1", "replace")))
        fields.append((b"Content-Length", b"%d" % size))
        try:
            return h11.Request(method=method, target=self._absolute + path, headers=fields)
        except h11.LocalProtocolError as exc:
            # h11 refuses every line break and NUL (so none can split our request), but its message
            # quotes the value, which may be the client's token: ours names the header alone
            raise _refused_header(headers) from exc

    def _checkout(self) -> Optional[Connection]:
        """An idle connection that is still open, or None."""
        while True:
            with self._lock:
                stale = self._take_stale(time.monotonic())
                connection = self._idle.pop() if self._idle else None
            for old in stale:
                old.sock.close()
            if connection is None or (not _stale(connection, time.monotonic())
                                      and still_open(connection.sock, self._tls is not None)):
                return connection
            connection.sock.close()

    def _take_stale(self, now: float) -> List[Connection]:
        """The oldest idle connections, while past their limit, out of the pool; under the lock (a
        newer one with a shorter limit of its own is caught at checkout)."""
        stale = []
        while self._idle and _stale(self._idle[0], now):
            stale.append(self._idle.popleft())
        return stale

    def _connect(self, deadline: Deadline) -> Steps[Connection]:
        """A new connection, TLS included, in steps: the request keeps ticking while a slow or
        unreachable upstream takes its time (each of TCP, the proxy's tunnel and TLS within the
        connect timeout)."""
        host, port = (self.proxy.host, self.proxy.port) if self.proxy is not None else (self.host, self.port)
        sock = yield from connect(host, port, self.connect_timeout, deadline)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small requests, sent at once
            if self.proxy is not None and self._tls is not None:
                yield from open_tunnel(sock, self.proxy, self.host, self.port, self.connect_timeout, deadline)
            if self._tls is not None:
                sock = yield from handshake(self._tls, sock, self.host, self.connect_timeout, deadline)
        except BaseException:
            sock.close()
            raise
        return Connection(sock, self._idle_limit)


def open_tunnel(sock: socket.socket, proxy: ProxyRoute, host: str, port: int, timeout: float,
                deadline: Deadline) -> Steps[None]:
    """Ask the proxy on ``sock`` for a tunnel to ``host:port`` (CONNECT), within ``timeout`` seconds
    of silence; TLS, or a WebSocket (ws_dial.py), then goes through it."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    protocol = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    request = h11.Request(method="CONNECT", target=authority, headers=[("Host", authority)] + proxy.headers)
    sock.settimeout(timeout)
    sock.sendall(protocol.send(request) + protocol.send(h11.EndOfMessage()))
    head = yield from read_head(sock, protocol, timeout, deadline)
    if not 200 <= head.status < 300:
        raise UpstreamError(502, f"The outbound proxy refused the tunnel to {authority}: HTTP {head.status}.",
                            code="upstream_unreachable")
    if protocol.trailing_data[0]:
        raise bad_stream("the proxy sent bytes before the tunnel was used")


def _refused_header(headers: Mapping[str, str]) -> ApiError:
    for name, value in headers.items():
        if _ILLEGAL_IN_HEADER.search(value):  # e.g. a client key with a line break
            return ApiError(400, f"The {name} header would contain a line break or NUL.", "invalid_request_error")
    return ApiError(400, "A request header value is not valid HTTP (a control character, or "
                         "whitespace at its start or end).", "invalid_request_error")


def _stale(connection: Connection, now: float) -> bool:
    return now - connection.idle_since > connection.idle_limit


def tls_context(ca_bundle: Optional[str]) -> ssl.SSLContext:
    """A client context for HTTP/1.1 (the conversation call, the WebSocket hand-off's dial)."""
    # REQUESTS_CA_BUNDLE may name a file or, as requests also accepts, a hashed certificate folder
    if ca_bundle and os.path.isdir(ca_bundle):
        context = ssl.create_default_context(capath=ca_bundle)
    else:
        context = ssl.create_default_context(cafile=ca_bundle)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _idle_limit(headers: HTTPHeaderDict, limit: float) -> float:
    """Our idle limit, or less when the server announced a shorter one (``Keep-Alive: timeout=N``):
    a second under it, so that we stop using a connection before the server closes it."""
    announced = _KEEP_ALIVE_TIMEOUT.search(headers.get("Keep-Alive", ""))
    return min(limit, int(announced.group(1)) - 1.0) if announced else limit


def still_open(sock: socket.socket, tls: bool) -> bool:
    """An idle connection with anything to read (the server's FIN, a TLS close_notify) is spent.
    One non-blocking read on the socket itself (a socket object made on a dup of the descriptor
    cost ~5 us more a chat under gevent, which sets up watchers for it): a peek on a plain socket;
    under TLS, where an SSLSocket takes no peek, a read of one byte, harmless since a connection
    with any byte to read is closed anyway (and TLS's own records, e.g. a session ticket, are
    handled by the read and yield no byte)."""
    try:
        sock.settimeout(0.0)
        if tls:
            sock.recv(1)
        else:
            sock.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, ssl.SSLWantReadError, socket.timeout):
        return True
    except OSError:
        return False
    return False


def _sent(exc: BaseException) -> BaseException:
    """A failure after the request was written: whether the upstream acted on it is unknown, so it
    counts as posted (auth/pool.py then tries no other token with it)."""
    if isinstance(exc, OSError):  # a reset, a timeout: ours, as wrap_transport_errors would make it
        error = transport_error("conversation", exc)
        error.__cause__ = exc
        exc = error
    if isinstance(exc, ApiError):
        exc.turn_posted = True
    return exc


# --- the answer's head ---------------------------------------------------------------------------

class NoAnswer(UpstreamError):
    """The connection ended before a single byte of an answer."""

    def __init__(self) -> None:
        super().__init__(502, "The upstream closed the connection without answering.", code="upstream_disconnected")


def read_head(sock: socket.socket, protocol: h11.Connection, read_timeout: float,
              deadline: Deadline) -> Steps[ResponseHead]:
    """The final head of the answer (1xx interim answers are skipped); the body bytes that came
    with it stay in ``protocol``. A request goes out only on a connection with nothing left to
    read, so the socket comes first (asking h11 before would only be told NEED_DATA)."""
    protocol.receive_data((yield from _head_bytes(sock, read_timeout, deadline, False)))
    while True:
        event = next_event(protocol)
        if event is h11.NEED_DATA:
            protocol.receive_data((yield from _head_bytes(sock, read_timeout, deadline, True)))
        elif isinstance(event, h11.Response):
            headers = HTTPHeaderDict()
            for name, value in event.headers:
                headers.add(name.decode("latin-1"), value.decode("latin-1"))
            return ResponseHead(event.status_code, headers)
        elif isinstance(event, h11.ConnectionClosed):
            raise NoAnswer()


def _head_bytes(sock: socket.socket, read_timeout: float, deadline: Deadline, answered: bool) -> Steps[bytes]:
    try:
        data = yield from receive(sock, deadline, read_timeout)
    except ConnectionResetError as exc:
        if answered:
            raise
        raise NoAnswer() from exc
    if data:
        return data
    if not answered:
        raise NoAnswer()
    raise UpstreamError(502, "The upstream closed the connection in the middle of its headers.",
                        code="upstream_disconnected")


def next_event(protocol: h11.Connection):
    """h11's next event; a protocol error of the upstream's is our bad_stream."""
    try:
        return protocol.next_event()
    except h11.RemoteProtocolError as exc:
        raise bad_stream(str(exc)) from exc


def bad_stream(detail: str) -> UpstreamError:
    return UpstreamError(502, f"The upstream answered with malformed HTTP: {detail}.", code="bad_stream")
