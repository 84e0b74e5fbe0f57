"""The vocabulary scenarios speak: what happens next in a reply, independent of the encoding.

A scenario yields these; an encoder (encodings.py) turns the ones that carry data into SSE frames
and the stream runner (streaming.py) acts on the ones about time and the connection.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawFrame:
    """SSE lines sent as they are in every encoding: pings, timestamps, non-JSON noise."""
    lines: tuple[str, ...]


@dataclass(frozen=True)
class DataFrame:
    """A plain `data: <json>` event, the same in both encodings (metadata, errors, garbage)."""
    payload: Any


@dataclass(frozen=True)
class MessageUpdate:
    """The whole cumulative event for one message as it now stands, as its JSON text.

    The text is the snapshot: taking it costs one serialization, which the cumulative encoding
    sends as it is; only the v1 encoding, which diffs documents, parses it back.
    `carries_text` marks the updates that add text, the ones `after_chunks` and `interval` count.
    """
    json: str
    carries_text: bool = False


@dataclass(frozen=True)
class Packed:
    """Several data steps sent as one `data:` line holding their JSON values back to back, as the
    2026 upstream sometimes does (spec backend-api-2026.md 3.1); the first frame's `event:` line is kept."""
    steps: tuple


@dataclass(frozen=True)
class StreamComplete:
    """End-of-reply marker; only the v1 encoding sends one (`message_stream_complete`)."""


@dataclass(frozen=True)
class Pause:
    """Silence on the wire for this long."""
    seconds: float


@dataclass(frozen=True)
class KeepAlive:
    """Hold the reply for this long, writing only pings (so a client that left is noticed)."""
    seconds: float
    every: float = 0.2


@dataclass(frozen=True)
class Drop:
    """Abort the connection mid-body, without the closing chunk of the chunked encoding."""


PING = RawFrame(("event: ping", "data: {}"))
DONE = RawFrame(("data: [DONE]",))
