"""Bytes on the wire: the one place that formats SSE frames.

A frame is a tuple of lines ("event: delta", "data: {...}"); it is joined with the chosen line
ending, closed by a blank line, encoded as raw UTF-8, and optionally cut into small pieces so a
client's decoder sees multi-byte characters split across reads.
"""
from __future__ import annotations

import json
from typing import Any, Iterator


def to_json(value: Any) -> str:
    """JSON as the real upstream writes it: raw UTF-8, default separators, keys in order."""
    return json.dumps(value, ensure_ascii=False)


def data_line(value: Any) -> str:
    return f"data: {to_json(value)}"


def render_frame(lines: tuple[str, ...], crlf: bool) -> bytes:
    newline = "\r\n" if crlf else "\n"
    return (newline.join(lines) + newline + newline).encode("utf-8")


def pieces(raw: bytes, size: int) -> Iterator[bytes]:
    """`raw` in pieces of `size` bytes (whole when size <= 0)."""
    if size <= 0:
        yield raw
        return
    for start in range(0, len(raw), size):
        yield raw[start:start + size]
