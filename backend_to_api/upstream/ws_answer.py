"""The 2024 hand-off's sign: the conversation POST answered JSON naming a WebSocket instead of a
stream (spec backend-api.md; original-behaviour.md 8.4). Read by client.py, followed by handoff.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import orjson


@dataclass(frozen=True)
class WebSocketAnswer:
    """The JSON document (``wss_url``, ``response_id``, ``conversation_id``)."""

    document: Mapping[str, Any]


def web_socket_answer(text: str) -> Optional[WebSocketAnswer]:
    """A JSON answer that hands the reply to a WebSocket (``wss_url`` or ``response_id``), else None."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    wanted = ("wss_url", "response_id")
    if isinstance(document, dict) and any(isinstance(document.get(key), str) and document[key] for key in wanted):
        return WebSocketAnswer(document)
    return None
