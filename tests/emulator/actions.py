"""The second half of the `gpt_action` scenario: the client's "always allow" answer, checked the way
the upstream would match it to its question, then the action's result and the GPT's answer."""
from __future__ import annotations

import time
import uuid
from typing import Any

from .messages import LiveMessage
from .scenarios import ACTION_OPERATION_HASH, ACTION_RECIPIENT, ReplyContext, Steps, answer, closing

ACTION_OUTPUT = '{"weather": "sunny"}'
ACTION_ANSWER = "Paris is sunny today."


def _get(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and len(value) > key:
            value = value[key]
        else:
            return None
    return value


def user_action(payload: Any) -> dict | None:
    """The `user_action` of a confirmation answer; None for any other conversation request."""
    action = _get(payload, "messages", 0, "metadata", "jit_plugin_data", "from_client", "user_action")
    return action if isinstance(action, dict) else None


def action_problem(payload: dict) -> str | None:
    """What is wrong with a confirmation answer, as a 422 detail; None when it is right."""
    action, message = user_action(payload), payload["messages"][0]
    checks = (
        (isinstance(payload.get("conversation_id"), str) and payload["conversation_id"], "conversation_id missing"),
        (payload.get("model") == "gpt-4-gizmo", "model must be gpt-4-gizmo"),
        (_get(payload, "conversation_mode", "kind") == "gizmo_interaction", "conversation_mode must be a GPT's"),
        (isinstance(_get(payload, "conversation_mode", "gizmo", "gizmo"), dict), "conversation_mode.gizmo missing"),
        (action.get("data") == {"type": "always_allow", "operation_hash": ACTION_OPERATION_HASH},
         "user_action.data must be always_allow with the operation hash"),
        (action.get("target_message_id") == payload.get("parent_message_id"),
         "target_message_id must be the confirmation message (the parent)"),
        (_get(message, "author", "role") == "assistant" and message.get("recipient") == "all",
         "the answer must come from the asking author, to all"),
        (_get(message, "content", "parts") == [""], "the answer carries no text"),
    )
    return next((problem for ok, problem in checks if not ok), None)


def action_result(ctx: ReplyContext) -> Steps:
    """The action's output (a tool message) and the GPT's answer built on it."""
    message = {"id": str(uuid.uuid4()), "author": {"role": "tool", "name": ACTION_RECIPIENT, "metadata": {}},
               "create_time": time.time(), "update_time": None,
               "content": {"content_type": "text", "parts": [ACTION_OUTPUT]},
               "status": "finished_successfully", "end_turn": None, "weight": 1.0,
               "metadata": {"message_type": "next", "model_slug": ctx.model_slug, "parent_id": ctx.last_message_id},
               "recipient": "all", "channel": None}
    ctx.last_message_id = message["id"]
    yield LiveMessage(ctx.conversation_id, message).update()
    yield from answer(ctx, ACTION_ANSWER)
    yield from closing()
