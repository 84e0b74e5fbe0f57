"""The body of one upstream reply, read as it arrives, with a timeout on every read.

A reply is thousands of small HTTP chunks, and the request greenlet that streams it must wake up
every half second (keep-alives, a client that left) even when the upstream is silent. So, once the
headers are in (``http1.py``), the body is read from our own socket: first the bytes h11 already
holds (they came with the headers), then ``recv`` with a per-call timeout. h11 unframes it
(chunked, sized or ended by the close); everything one ``recv`` completes comes back as one piece,
so the reply goes on in one write per upstream read; ``zlib`` undoes gzip/deflate. A body read to
its clean end gives its connection back to the pool (the next reply skips the TCP and TLS
handshakes); anything else closes it.
"""
from __future__ import annotations

import socket
import ssl
import time
import zlib
from typing import Any, List, Mapping, Optional

import h11

from ..errors import UpstreamError
from .http1 import Connection, ConnectionPool, Exchange, bad_stream

READ_SIZE = 64 * 1024
SETTLE_LIMIT = 64 * 1024  # bytes after [DONE] that are read (and dropped) to keep a connection
# How long the end of a body that said [DONE] is waited for. Servers often write the last chunk on
# its own just after [DONE] (gevent's pywsgi when its generator returns); without a short grace a
# busy machine loses that race and the next chat pays a new TCP and TLS handshake, which costs
# more than this wait. An upstream that holds the end longer costs a closed connection, no more.
SETTLE_WAIT = 0.02
_CHUNK_TAILS = (b"", b"\r", b"\r\n")  # what may follow a chunk's data before its next size line
_ZLIB_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class UpstreamBody:
    """One upstream response: status, headers, then ``read(timeout)``."""

    def __init__(self, status: int, headers: Mapping[str, str], connection: Connection,
                 pool: Optional[ConnectionPool]) -> None:
        self.status = status
        self.headers = headers
        self._connection = connection
        self._sock = connection.sock
        self._protocol = connection.protocol
        self._pool = pool  # None once released
        self._timeout: Optional[float] = None
        self._inflater: Any = None
        self._started = False
        self._ended = False
        self._closed_by_server = False  # the socket said end-of-file
        self._hungry = False  # h11 has given all it can from what it holds (it may hold early bytes)

    @classmethod
    def from_exchange(cls, exchange: Exchange, pool: ConnectionPool) -> "UpstreamBody":
        return cls(exchange.head.status, exchange.head.headers, exchange.connection, pool)

    def read(self, timeout: float) -> Optional[bytes]:
        """Body bytes (unframed, decoded); None when nothing came within ``timeout`` seconds; b""
        at the end. Raises UpstreamError when the connection breaks or the framing is wrong."""
        if not self._started:
            self._start()
        while not self._ended:
            if self._hungry:  # h11 said it needs more: straight to the socket
                data = self._receive(timeout)
                if data is None:
                    return None
                self._closed_by_server = not data
                self._protocol.receive_data(data)
                self._hungry = False
            pieces = self._unframed()
            if pieces or self._ended:
                payload = self._decoded(pieces)
                if payload:
                    return payload
        return b""

    def close(self, settle: bool = False) -> None:
        """Give a cleanly finished connection back to the pool, else close it (a connection with
        unread bytes in it must never serve another request).

        ``settle``: the reader has all it wanted (the reply said [DONE]); the end of the body (the
        last chunk, which often follows [DONE] in a write of its own) is read first if it comes
        within SETTLE_WAIT, so that the connection can serve the next chat instead of
        costing it a new TCP and TLS handshake."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if settle and not self._ended:
            self._settle()
        if self._ended and self._connection.reusable():
            pool.give_back(self._connection)
        else:
            self._sock.close()

    def _settle(self) -> None:
        left, deadline = SETTLE_LIMIT, time.monotonic() + SETTLE_WAIT
        try:
            while not self._ended and left > 0:
                data = self.read(max(deadline - time.monotonic(), 0.0))
                if data is None:
                    return  # not here in time: the connection is closed rather than waited for
                left -= len(data)
        except UpstreamError:
            pass

    def read_text(self, limit: int = 64 * 1024, timeout: float = 30.0) -> str:
        """The start of a body we only need for an error message (then closes the response)."""
        pieces: List[bytes] = []
        size, deadline = 0, time.monotonic() + timeout
        try:
            while size < limit:
                data = self.read(max(deadline - time.monotonic(), 0.0))
                if not data:  # the end, or (None) nothing more in time
                    break
                pieces.append(data)
                size += len(data)
        except UpstreamError:
            pass
        finally:
            self.close()
        return b"".join(pieces)[:limit].decode("utf-8", "replace")

    # --- the socket ------------------------------------------------------------------------------

    def _start(self) -> None:
        """The content coding is checked at the first read, not before: an error answer in an
        encoding we cannot read still has a status worth reporting."""
        self._started = True
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        if encoding in _ZLIB_WBITS:
            self._inflater = zlib.decompressobj(_ZLIB_WBITS[encoding])
        elif encoding not in ("", "identity"):
            raise UpstreamError(502, f"The upstream sent the reply in {encoding!r} encoding, which we do not decode.",
                                code="bad_stream")

    def _receive(self, timeout: float) -> Optional[bytes]:
        if timeout != self._timeout:
            self._sock.settimeout(timeout)
            self._timeout = timeout
        try:
            return self._sock.recv(READ_SIZE)
        except (socket.timeout, BlockingIOError, ssl.SSLWantReadError):
            return None
        except OSError as exc:
            raise _broken() from exc

    # --- framing and encoding --------------------------------------------------------------------

    def _unframed(self) -> List[bytes]:
        """The payload h11 can give from what it holds (empty when it needs more bytes)."""
        pieces: List[bytes] = []
        next_event = self._protocol.next_event
        while True:
            try:
                event = next_event()
            except h11.RemoteProtocolError as exc:
                if self._closed_by_server:  # e.g. the close came in the middle of a chunk
                    raise _broken() from exc
                raise bad_stream(str(exc)) from exc
            if event is h11.NEED_DATA:
                self._hungry = True
                return pieces
            if type(event) is not h11.Data:  # EndOfMessage (ConnectionClosed and PAUSED only come after it)
                self._ended = True
                return pieces
            pieces.append(event.data)
            if event.chunk_end and self._protocol.trailing_data[0] in _CHUNK_TAILS:
                # A whole chunk, and at most its CRLF after it: the next size line is not here,
                # so h11 could only say NEED_DATA (most reads are one chunk: this call is saved).
                self._hungry = True
                return pieces

    def _decoded(self, pieces: List[bytes]) -> bytes:
        payload = b"".join(pieces)  # bytes, also from h11's one bytearray
        if self._inflater is None:
            return payload
        try:
            out = self._inflater.decompress(payload)
            return out + self._inflater.flush() if self._ended else out
        except zlib.error as exc:
            raise UpstreamError(502, f"The upstream reply could not be decompressed: {exc}", code="bad_stream") from exc


def _broken() -> UpstreamError:
    return UpstreamError(502, "The upstream connection broke in the middle of the reply.",
                         code="upstream_disconnected")
