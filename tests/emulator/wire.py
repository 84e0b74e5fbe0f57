"""Bytes on the wire: the one place that formats SSE frames.

A frame is a tuple of lines ("event: delta", "data: {...}"); it is joined with the chosen line
ending, closed by a blank line, encoded as raw UTF-8, and optionally cut into small pieces so a
client's decoder sees multi-byte characters split across reads.
"""
from __future__ import annotations

import json
from typing import Any


# What json.dumps(value, ensure_ascii=False) builds anew on every call, built once.
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def to_json(value: Any) -> str:
    """JSON as the real upstream writes it: raw UTF-8, default separators, keys in order."""
    return _ENCODER.encode(value)


def data_line(value: Any) -> str:
    return f"data: {to_json(value)}"


def render_frame(lines: tuple[str, ...], crlf: bool) -> bytes:
    newline = "\r\n" if crlf else "\n"
    return (newline.join(lines) + newline + newline).encode("utf-8")


def pieces(raw: bytes, size: int) -> tuple[bytes, ...]:
    """`raw` in pieces of `size` bytes (whole when size <= 0). A tuple, not a generator: this runs
    for every event, and most often returns just one piece."""
    if size <= 0:
        return (raw,)
    return tuple(raw[start:start + size] for start in range(0, len(raw), size))
