"""The body of one upstream reply, read as it arrives, with a timeout on every read.

A reply is thousands of small HTTP chunks, and the request greenlet that streams it must wake up
every half second (keep-alives, a client that left) even when the upstream is silent. urllib3's
``read1`` can do neither cheaply: it goes through its own buffers and http.client's chunk reader
(several Python calls per chunk), and a read timeout leaves http.client's socket file unusable.
So, once the headers are in, the body is read from the socket itself: first what http.client's
reader had already buffered, then ``recv`` with a per-call timeout; ``ChunkedDecoder`` unframes it
and ``zlib`` undoes gzip/deflate. A body read to its clean end gives its connection back to the
pool (the next reply skips the TCP and TLS handshakes); anything else closes it.
"""
from __future__ import annotations

import socket
import ssl
import zlib
from typing import Any, List, Mapping, Optional

import urllib3

from ..errors import UpstreamError
from .chunked import ChunkedDecoder, ChunkedFormatError
from .errors import wrap_transport_errors

READ_SIZE = 64 * 1024
_ZLIB_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class UpstreamBody:
    """One upstream response (urllib3, not preloaded): status, headers, then ``read(timeout)``."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self.response = response
        self.status: int = response.status
        self.headers: Mapping[str, str] = response.headers
        self._message: Any = getattr(response, "_fp", None)  # http.client's response (headers read)
        self._sock: Optional[socket.socket] = None
        self._timeout: Optional[float] = None
        self._chunks: Optional[ChunkedDecoder] = None
        self._left: Optional[int] = None      # bytes a Content-Length body still owes
        self._inflater: Any = None
        self._ended = False
        self._clean_end = False               # read to its last byte: the connection can serve again
        self._pending: List[bytes] = []       # what http.client had buffered beyond the headers

    def read(self, timeout: float) -> Optional[bytes]:
        """Body bytes (unframed, decoded); None when nothing came within ``timeout`` seconds; b""
        at the end. Raises UpstreamError when the connection breaks or the framing is wrong."""
        if self._sock is None:
            self._take_over()
        while not self._ended:
            data = self._receive(timeout)
            if data is None:
                return None
            payload = self._payload(data)
            if payload:
                return payload
        return b""

    def close(self) -> None:
        """Give a cleanly finished connection back to the pool, else close it (a connection with
        unread bytes in it must never serve another request)."""
        if self._clean_end:
            if self._message is not None:
                self._message.close()  # http.client's view of this reply; the socket stays open
            self.response.release_conn()
            return
        self.response.close()
        self.response.release_conn()

    def read_text(self, limit: int = 64 * 1024) -> str:
        """The start of a body we only need for an error message (then closes the response)."""
        try:
            with wrap_transport_errors("reading the error body"):
                return self.response.read(limit, decode_content=True).decode("utf-8", "replace")
        except UpstreamError:
            return ""
        finally:
            self.response.close()
            self.response.release_conn()

    # --- the socket ------------------------------------------------------------------------------

    def _take_over(self) -> None:
        sock = getattr(self.response.connection, "sock", None)
        if sock is None and self._message is not None:
            # A "Connection: close" reply: http.client has already let go of the socket, which its
            # reader (a SocketIO) still holds.
            sock = getattr(getattr(self._message.fp, "raw", None), "_sock", None)
        if self._message is None or sock is None:
            raise UpstreamError(502, "The upstream reply has no connection to read from.", code="upstream_error")
        self._sock = sock
        self._frame(self._message)
        self._pending = self._buffered(self._message.fp)

    def _frame(self, message: Any) -> None:
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        if encoding in _ZLIB_WBITS:
            self._inflater = zlib.decompressobj(_ZLIB_WBITS[encoding])
        elif encoding not in ("", "identity"):
            raise UpstreamError(502, f"The upstream sent the reply in {encoding!r} encoding, which we do not decode.",
                                code="bad_stream")
        if getattr(message, "chunked", False):
            self._chunks = ChunkedDecoder()
            return
        self._left = getattr(message, "length", None)  # None: the body ends when the server closes
        if self._left == 0:  # an empty body: nothing to wait for
            self._ended = self._clean_end = True

    def _buffered(self, source: Any) -> List[bytes]:
        """Empty http.client's buffered reader without waiting: what it holds, plus what the socket
        has right now. Afterwards only the socket is read."""
        pieces: List[bytes] = []
        self._sock.settimeout(0.0)
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
            self._clean_end = not self._chunks.extra and not self._message.will_close
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
            self._clean_end = len(payload) == len(data) and not self._message.will_close
        return payload

    def _inflate(self, payload: bytes) -> bytes:
        try:
            out = self._inflater.decompress(payload)
            return out + self._inflater.flush() if self._ended else out
        except zlib.error as exc:
            raise UpstreamError(502, f"The upstream reply could not be decompressed: {exc}", code="bad_stream") from exc


def _broken() -> UpstreamError:
    return UpstreamError(502, "The upstream connection broke in the middle of the reply.",
                         code="upstream_disconnected")
