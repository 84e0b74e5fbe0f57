"""The body of one upstream reply, read as it arrives, with a timeout on every read.

A reply is thousands of small HTTP chunks, and the request greenlet that streams it must wake up
every half second (keep-alives, a client that left) even when the upstream is silent. urllib3's
``read1`` can do neither cheaply: it goes through its own buffers and http.client's chunk reader
(several Python calls per chunk), and a read timeout leaves http.client's socket file unusable.
So, once the headers are in, the body is read from the socket itself: first the bytes that came
with the headers (our own exchange's, or what http.client's reader had buffered), then ``recv``
with a per-call timeout; ``ChunkedDecoder`` unframes it and ``zlib`` undoes gzip/deflate. A body
read to its clean end gives its connection back to the pool (the next reply skips the TCP and TLS
handshakes); anything else closes it.
"""
from __future__ import annotations

import socket
import ssl
import time
import zlib
from typing import Any, Callable, List, Mapping, Optional

import urllib3

from ..errors import UpstreamError
from .chunked import ChunkedDecoder, ChunkedFormatError
from .http1 import ConnectionPool, Exchange, Framing

READ_SIZE = 64 * 1024
SETTLE_LIMIT = 64 * 1024  # bytes after [DONE] that are read (and dropped) to keep a connection
_ZLIB_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class UpstreamBody:
    """One upstream response: status, headers, then ``read(timeout)``.

    Made from our own exchange (``from_exchange``: the conversation call) or from a urllib3
    response that was not preloaded (``from_urllib3``: the conversation call through a proxy).
    """

    def __init__(self, status: int, headers: Mapping[str, str], sock: socket.socket, framing: Framing,
                 early: List[bytes], release: Callable[[bool], None]) -> None:
        self.status = status
        self.headers = headers
        self._sock = sock
        self._release: Optional[Callable[[bool], None]] = release  # True: the connection may serve again
        self._pending = [piece for piece in early if piece]  # body bytes that came with the headers
        self._chunks = ChunkedDecoder() if framing.chunked else None
        self._left = None if framing.chunked else framing.length  # bytes a sized body still owes
        self._will_close = framing.will_close
        self._timeout: Optional[float] = None
        self._inflater: Any = None
        self._started = False
        empty = self._left == 0  # nothing to wait for
        self._ended = empty
        self._clean_end = empty and not self._will_close

    @classmethod
    def from_exchange(cls, exchange: Exchange, pool: ConnectionPool) -> "UpstreamBody":
        sock = exchange.sock

        def release(clean: bool) -> None:
            if clean:
                pool.give_back(sock)
            else:
                sock.close()

        head = exchange.head
        return cls(head.status, head.headers, sock, head.framing, [exchange.early], release)

    @classmethod
    def from_urllib3(cls, response: urllib3.BaseHTTPResponse) -> "UpstreamBody":
        message: Any = getattr(response, "_fp", None)  # http.client's response (headers read)
        sock = getattr(response.connection, "sock", None)
        if sock is None and message is not None:
            # A "Connection: close" reply: http.client has already let go of the socket, which its
            # reader (a SocketIO) still holds.
            sock = getattr(getattr(message.fp, "raw", None), "_sock", None)
        if message is None or sock is None:
            raise UpstreamError(502, "The upstream reply has no connection to read from.", code="upstream_error")

        def release(clean: bool) -> None:
            if clean:
                message.close()  # http.client's view of this reply; the socket stays open
            else:
                response.close()
            response.release_conn()

        framing = Framing(bool(message.chunked), message.length, bool(message.will_close))
        return cls(response.status, response.headers, sock, framing, _buffered(message.fp, sock), release)

    def read(self, timeout: float) -> Optional[bytes]:
        """Body bytes (unframed, decoded); None when nothing came within ``timeout`` seconds; b""
        at the end. Raises UpstreamError when the connection breaks or the framing is wrong."""
        if not self._started:
            self._start()
        while not self._ended:
            data = self._receive(timeout)
            if data is None:
                return None
            payload = self._payload(data)
            if payload:
                return payload
        return b""

    def close(self, settle: bool = False) -> None:
        """Give a cleanly finished connection back to the pool, else close it (a connection with
        unread bytes in it must never serve another request).

        ``settle``: the reader has all it wanted (the reply said [DONE]); the end of the body (the
        last chunk, which often follows [DONE] in a write of its own) is read first if it is
        already here, without waiting, so that the connection can serve the next chat instead of
        costing it a new TCP and TLS handshake."""
        release, self._release = self._release, None
        if release is None:
            return
        if settle and not self._ended:
            self._settle()
        release(self._clean_end)

    def _settle(self) -> None:
        left = SETTLE_LIMIT
        try:
            while not self._ended and left > 0:
                data = self.read(0.0)
                if data is None:
                    return  # not here yet: the connection is closed rather than waited for
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
        if self._pending:
            return self._pending.pop(0)
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

    def _payload(self, data: bytes) -> bytes:
        if self._chunks is not None:
            payload = self._unchunk(data)
        else:
            payload = self._sized(data)
        if self._inflater is not None:
            payload = self._inflate(payload)
        return payload

    def _unchunk(self, data: bytes) -> bytes:
        if not data:
            raise _broken()
        try:
            payload = self._chunks.feed(data)
        except ChunkedFormatError as exc:
            raise UpstreamError(502, f"The upstream reply is not valid chunked HTTP: {exc}", code="bad_stream") from exc
        if self._chunks.done:
            self._ended = True
            self._clean_end = not self._chunks.extra and not self._will_close
        return payload

    def _sized(self, data: bytes) -> bytes:
        if self._left is None:  # ends when the server closes: never reused
            self._ended = not data
            return data
        if not data:
            raise _broken()
        payload = data[:self._left]
        self._left -= len(payload)
        if self._left == 0:
            self._ended = True
            self._clean_end = len(payload) == len(data) and not self._will_close
        return payload

    def _inflate(self, payload: bytes) -> bytes:
        try:
            out = self._inflater.decompress(payload)
            return out + self._inflater.flush() if self._ended else out
        except zlib.error as exc:
            raise UpstreamError(502, f"The upstream reply could not be decompressed: {exc}", code="bad_stream") from exc


def _buffered(source: Any, sock: socket.socket) -> List[bytes]:
    """Empty http.client's buffered reader without waiting: what it holds, plus what the socket
    has right now. Afterwards only the socket is read."""
    pieces: List[bytes] = []
    sock.settimeout(0.0)
    try:
        while True:
            data = source.read1(READ_SIZE)
            if not data:
                break
            pieces.append(data)
    except (BlockingIOError, ssl.SSLWantReadError):
        pass  # nothing more right now
    except OSError as exc:
        raise _broken() from exc
    return pieces


def _broken() -> UpstreamError:
    return UpstreamError(502, "The upstream connection broke in the middle of the reply.",
                         code="upstream_disconnected")
