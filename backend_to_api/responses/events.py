"""The streamed events of one response: numbered in order, framed as SSE.

OpenAI's Responses stream names each event twice (the SSE ``event:`` line and the JSON ``type``)
and numbers them with ``sequence_number`` from 0; clients (the openai SDK's ResponseStream, the
Agents SDK) dispatch on ``type``. A non-streamed response goes through the same builder with
framing off, so both answers are made by one code path.
"""
from __future__ import annotations

from typing import Any, Dict

from .. import jsonbytes

KEEP_ALIVE = b": keep-alive\n\n"


class EventSequence:
    """Makes the SSE bytes of each event, numbered; ``framed`` False: counts only (non-stream)."""

    def __init__(self, framed: bool) -> None:
        self.framed = framed
        self.next_number = 0

    def event(self, kind: str, **fields: Any) -> bytes:
        payload: Dict[str, Any] = {"type": kind, **fields, "sequence_number": self.next_number}
        self.next_number += 1
        if not self.framed:
            return b""
        return b"event: " + kind.encode("ascii") + b"\ndata: " + jsonbytes.dumps(payload) + b"\n\n"
