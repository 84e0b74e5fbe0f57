"""The answer to a GPT action's confirmation request: "Always allow", as the original sent it.

An API client has nobody to click the web page's button, so a GPT reply that stops to ask is
answered at once with a new turn in the same conversation (spec/backend-api.md, "GPT actions").
"""
from __future__ import annotations

import uuid
from typing import Any, Dict

from ..models import ModelSpec
from ..sse.events import ActionConfirmation
from .conversation import TIMEZONE_OFFSET_MIN


def build_action_payload(confirmation: ActionConfirmation, model: ModelSpec, hide_history: bool) -> Dict[str, Any]:
    user_action = {
        "data": {"type": "always_allow", "operation_hash": confirmation.operation_hash},
        "target_message_id": confirmation.target_message_id,
    }
    message = {
        "id": str(uuid.uuid4()),
        # From the author that asked (the upstream matches the answer to its question by it).
        "author": {"role": confirmation.role, "name": confirmation.name},
        "content": {"content_type": "text", "parts": [""]},
        "recipient": "all",
        "metadata": {"jit_plugin_data": {"from_client": {"user_action": user_action}}},
    }
    return {
        "action": "next",
        "messages": [message],
        "conversation_id": confirmation.conversation_id,
        "parent_message_id": confirmation.message_id,
        "model": model.slug,
        "timezone_offset_min": TIMEZONE_OFFSET_MIN,
        "history_and_training_disabled": hide_history,
        "conversation_mode": {"kind": "gizmo_interaction", "gizmo_id": model.gizmo_id, "gizmo": model.gizmo},
        "force_paragen": False,
        "force_rate_limit": False,
    }
