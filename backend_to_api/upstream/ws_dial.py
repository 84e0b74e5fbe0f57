"""Dialing a WebSocket URL the upstream handed us (the reply hand-off, handoff.py), behind the
same address check as every other URL from the upstream (guarded_fetch.py): the host is resolved
once here, only an address that passes is connected to, and the connection goes to that address
(TLS keeps the name: SNI and the certificate check use the host of the URL).

Through the operator's outbound proxy (the one the conversation call takes, proxy_route.py) the
socket goes to the proxy, which is asked for a CONNECT tunnel to the WebSocket's host and port
(http1.open_tunnel, the conversation call's own); TLS for wss:// and the WebSocket handshake then
run inside the tunnel. The name is still checked first, as guarded_fetch checks what it sends to
the proxy.

Connecting, the tunnel and TLS are resumable steps (steps.py), so the request dialing keeps its
ticks: a client that leaves meanwhile abandons the dial, which closes the socket.

websocket-client is used through its public API: we open (and for wss:// wrap in TLS) the socket
ourselves and hand it to ``create_connection(socket=...)``, which then only speaks the protocol.
Its sockets are plain ``socket`` objects, so under gevent's monkey-patching they cooperate like
any other; no thread of its own is started (we never use ``WebSocketApp``/``run_forever``).
"""
from __future__ import annotations

import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from functools import cached_property
from typing import List, Mapping, Optional

import websocket

from ..errors import UpstreamError, upstream_unreachable
from .guarded_fetch import Allowlist, RefusedAddress, allowed_addresses, check_before_proxy
from .http1 import open_tunnel, tls_context
from .proxy_route import ProxyRoute
from .socket_steps import connect, handshake
from .steps import Deadline, Steps

ORIGIN = "https://chatgpt.com"  # what the web page's socket sends (spec backend-api-2026.md 3.6)


@dataclass(frozen=True)
class WebSocketDialer:
    allowlist: Allowlist  # the upstream URLs' list: url_fetch_allowlist plus the upstream's host
    ca_bundle: str
    connect_timeout: float
    proxy: Optional[ProxyRoute] = None  # the upstream's outbound proxy; None: dialed straight

    @cached_property
    def _tls(self) -> ssl.SSLContext:
        # Built once per dialer: loading the CA bundle costs milliseconds, every wss:// dial needs it.
        return tls_context(self.ca_bundle)

    def dial(self, url: str, headers: Mapping[str, str], deadline: Deadline) -> Steps[websocket.WebSocket]:
        """An open WebSocket to ``url`` (ws or wss), in steps; UpstreamError (502) when it cannot be opened."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise UpstreamError(502, "The upstream handed off the reply to an unusable WebSocket URL.",
                                code="upstream_handoff_failed")
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        try:
            sock = yield from self._open(parts.hostname, port, deadline)
        except RefusedAddress as exc:
            raise UpstreamError(502, f"The upstream handed off the reply to a refused address: {exc}",
                                code="upstream_handoff_failed")
        except OSError as exc:
            raise upstream_unreachable(f"WebSocket {parts.hostname}: {exc}")
        try:
            if parts.scheme == "wss":
                sock = yield from handshake(self._tls, sock, parts.hostname, self.connect_timeout, deadline)
            sock.settimeout(self.connect_timeout)  # the steps left it non-blocking; the handshake blocks, bounded
            return websocket.create_connection(url, socket=sock, timeout=self.connect_timeout, origin=ORIGIN,
                                               header=[f"{name}: {value}" for name, value in headers.items()])
        except (OSError, websocket.WebSocketException) as exc:
            sock.close()
            raise UpstreamError(502, f"The upstream's WebSocket could not be opened: {exc}",
                                code="upstream_handoff_failed")
        except BaseException:  # abandoned (the client left) or refused: nothing stays open
            sock.close()
            raise

    def _open(self, host: str, port: int, deadline: Deadline) -> Steps[socket.socket]:
        """A TCP connection that reaches ``host:port``: straight, or a tunnel through the proxy."""
        if self.proxy is None:
            return (yield from self._connect_checked(host, port, deadline))
        check_before_proxy(host, port, self.allowlist)
        sock = yield from connect(self.proxy.host, self.proxy.port, self.connect_timeout, deadline)
        try:
            _no_delay(sock)
            yield from open_tunnel(sock, self.proxy, host, port, self.connect_timeout, deadline)
        except BaseException:
            sock.close()
            raise
        return sock

    def _connect_checked(self, host: str, port: int, deadline: Deadline) -> Steps[socket.socket]:
        """A connection to the first checked address that answers (nothing sent to the others)."""
        addresses: List = allowed_addresses(host, port, self.allowlist)
        last: OSError = OSError("no address")
        for address in addresses:
            try:
                sock = yield from connect(str(address), port, self.connect_timeout, deadline)
            except OSError as exc:
                last = exc
                continue
            _no_delay(sock)
            return sock
        raise last


def _no_delay(sock: socket.socket) -> None:
    # small frames both ways (commands, acks, pings): without this Nagle holds each one back
    # until the peer's delayed ACK (websocket-client sets it too when it opens the socket)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
