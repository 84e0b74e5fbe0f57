"""ChatRequest -> the backend-api ``conversation`` payload (see spec/backend-api.md).

Every OpenAI message becomes one upstream message with its role, in order, in a new conversation
(the web backend keeps no state we rely on: each request carries the whole history).
"""
from __future__ import annotations

import uuid
from typing import Any, Dict, List, Sequence

from ..errors import bad_request
from ..models import ModelSpec
from .chat_request import ChatMessage, ChatRequest

TIMEZONE_OFFSET_MIN = -480  # what the original sent (UTC+8); the upstream only uses it for dates


def build_conversation_payload(
    request: ChatRequest, model: ModelSpec, hide_history: bool
) -> Dict[str, Any]:
    messages = _fold_system(request.messages) if model.family.reasoning else request.messages
    return {
        "action": "next",
        "messages": [_upstream_message(message) for message in messages],
        "parent_message_id": str(uuid.uuid4()),
        "model": model.slug,
        "timezone_offset_min": TIMEZONE_OFFSET_MIN,
        "history_and_training_disabled": hide_history,
        "conversation_mode": {"kind": "primary_assistant"},
        "force_paragen": False,
        "force_rate_limit": False,
    }


def _upstream_message(message: ChatMessage) -> Dict[str, Any]:
    if message.images:
        # Image and file inputs need the upload flow (issue 3); refuse clearly rather than drop them.
        raise bad_request("Image and file inputs are not supported by this server yet.", param="messages")
    return {
        "id": str(uuid.uuid4()),
        "author": {"role": message.role},
        "content": {"content_type": "text", "parts": [message.text]},
        "metadata": {},
    }


def _fold_system(messages: Sequence[ChatMessage]) -> List[ChatMessage]:
    """o1-style models take no system role: prepend system text to the first user turn."""
    system = [m.text for m in messages if m.role == "system" and m.text]
    rest = [m for m in messages if m.role != "system"]
    if not system:
        return rest
    for index, message in enumerate(rest):
        if message.role == "user":
            rest[index] = ChatMessage("user", ("\n\n".join(system),) + message.parts)
            return rest
    return [ChatMessage("user", ("\n\n".join(system),))] + rest
