"""Incremental decoding of HTTP/1.1 chunked transfer coding (RFC 9112, section 7.1): no I/O.

Why our own: the upstream reply is read straight from the socket (``upstream.body``), one ``recv``
per network read, instead of through http.client's and urllib3's chunk readers, which cost several
Python calls and a line read per chunk; a reply is thousands of small chunks.
"""
from __future__ import annotations

from typing import List

MAX_LINE_BYTES = 8 * 1024  # a size line (with extensions) or a trailer field; more is not HTTP
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_SIZE, _DATA_END, _TRAILER = "size", "data-end", "trailer"


class ChunkedFormatError(Exception):
    """The bytes are not a chunked body (bad size line, missing CRLF after data, overlong line)."""


class ChunkedDecoder:
    """``feed(bytes)`` -> the payload bytes they complete; ``done`` once the last chunk and the
    trailer section have arrived. Work per call is proportional to the new bytes."""

    def __init__(self) -> None:
        self.done = False
        self.extra = 0          # bytes that came after the end (a connection with these is not reused)
        self._state = _SIZE
        self._left = 0          # payload bytes the current chunk still owes
        self._pending = b""     # the unterminated start of a size line, a CRLF or a trailer line

    def feed(self, data: bytes) -> bytes:
        if self._pending:
            data, self._pending = self._pending + data, b""
        out: List[bytes] = []
        position, end = 0, len(data)
        while position < end and not self.done:
            if self._left:
                take = min(self._left, end - position)
                out.append(data[position:position + take])
                position += take
                self._left -= take
                if not self._left and data.startswith(b"\r\n", position):  # the usual chunk end
                    position += 2
                    self._state = _SIZE
                continue
            newline = data.find(b"\n", position)
            if newline < 0:
                self._keep(data[position:])
                break
            self._line(data[position:newline])
            position = newline + 1
        if self.done:
            self.extra += end - position
        return out[0] if len(out) == 1 else b"".join(out)

    def _keep(self, rest: bytes) -> None:
        if len(rest) > MAX_LINE_BYTES:
            raise ChunkedFormatError("a chunk size or trailer line is too long")
        self._pending = rest

    def _line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > MAX_LINE_BYTES:
            raise ChunkedFormatError("a chunk size or trailer line is too long")
        if self._state == _DATA_END:
            if line:
                raise ChunkedFormatError("chunk data is longer than its size")
            self._state = _SIZE
        elif self._state == _SIZE:
            self._size(line)
        elif not line:  # the blank line that ends the trailer section
            self.done = True

    def _size(self, line: bytes) -> None:
        digits = line.split(b";", 1)[0].strip(b" \t")
        # int(x, 16) alone would also take "0x1f", "1_f" and "+1f", which are not chunk sizes.
        if not digits or len(digits) > 16 or not _HEX_DIGITS.issuperset(digits):
            raise ChunkedFormatError(f"bad chunk size line {line[:40]!r}")
        size = int(digits, 16)
        if size == 0:
            self._state = _TRAILER
        else:
            self._left = size
            self._state = _DATA_END
