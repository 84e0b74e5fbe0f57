"""Dialing a WebSocket URL the upstream handed us (the reply hand-off, handoff.py), behind the
same address check as every other URL from the upstream (guarded_fetch.py): the host is resolved
once here, only an address that passes is connected to, and the connection goes to that address
(TLS keeps the name: SNI and the certificate check use the host of the URL).

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
from typing import List, Mapping

import websocket

from ..errors import UpstreamError, upstream_unreachable
from .guarded_fetch import Allowlist, RefusedAddress, allowed_addresses

ORIGIN = "https://chatgpt.com"  # what the web page's socket sends (spec backend-api-2026.md 3.6)


@dataclass(frozen=True)
class WebSocketDialer:
    allowlist: Allowlist  # the upstream URLs' list: url_fetch_allowlist plus the upstream's host
    ca_bundle: str
    connect_timeout: float

    def dial(self, url: str, headers: Mapping[str, str]) -> websocket.WebSocket:
        """An open WebSocket to ``url`` (ws or wss); UpstreamError (502) when it cannot be opened."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise UpstreamError(502, "The upstream handed off the reply to an unusable WebSocket URL.",
                                code="upstream_handoff_failed")
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        try:
            sock = self._connect(parts.hostname, port)
        except RefusedAddress as exc:
            raise UpstreamError(502, f"The upstream handed off the reply to a refused address: {exc}",
                                code="upstream_handoff_failed")
        except OSError as exc:
            raise upstream_unreachable(f"WebSocket {parts.hostname}: {exc}")
        try:
            if parts.scheme == "wss":
                context = ssl.create_default_context(cafile=self.ca_bundle)
                sock = context.wrap_socket(sock, server_hostname=parts.hostname)
            return websocket.create_connection(url, socket=sock, timeout=self.connect_timeout, origin=ORIGIN,
                                               header=[f"{name}: {value}" for name, value in headers.items()])
        except (OSError, websocket.WebSocketException) as exc:
            sock.close()
            raise UpstreamError(502, f"The upstream's WebSocket could not be opened: {exc}",
                                code="upstream_handoff_failed")

    def _connect(self, host: str, port: int) -> socket.socket:
        """A TCP connection to the first checked address that answers (nothing sent to the others)."""
        addresses: List = allowed_addresses(host, port, self.allowlist)
        last: OSError = OSError("no address")
        for address in addresses:
            try:
                sock = socket.create_connection((str(address), port), timeout=self.connect_timeout)
            except OSError as exc:
                last = exc
                continue
            # small frames both ways (commands, acks, pings): without this Nagle holds each one back
            # until the peer's delayed ACK (websocket-client sets it too when it opens the socket)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise last
