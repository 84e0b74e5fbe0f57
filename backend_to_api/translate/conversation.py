"""ChatRequest -> the backend-api ``conversation`` payload (see spec/backend-api.md).

Every OpenAI message becomes one upstream message with its role, in order, in a new conversation
(the web backend keeps no state we rely on: each request carries the whole history). Before them,
when asked for: the tools protocol (tool_calls/prompt.py) and the response format
(structured_output.py), each as a system message; tool calls and results in the history are
rendered as that protocol's blocks. A request with neither sends the messages as they came.
"""
from __future__ import annotations

import uuid
from typing import Any, Dict, List, Optional, Sequence

from ..errors import bad_request
from ..models import ModelSpec
from ..tool_calls.prompt import protocol_text, render_history
from .chat_request import ChatMessage, ChatRequest, ImagePart
from .thinking import thinking_fields
from .uploads import AccountFiles

TIMEZONE_OFFSET_MIN = -480  # what the original sent (UTC+8); the upstream only uses it for dates


def build_conversation_payload(
    request: ChatRequest, model: ModelSpec, hide_history: bool, files: Optional[AccountFiles] = None
) -> Dict[str, Any]:
    """``files`` uploads the messages' images and files (None: a request with any is a 400)."""
    messages = sent_messages(request)
    if model.family.reasoning:
        messages = _fold_system(messages)
    return {
        "action": "next",
        "messages": [_upstream_message(message, files) for message in messages],
        "parent_message_id": str(uuid.uuid4()),
        "model": model.slug,
        "timezone_offset_min": TIMEZONE_OFFSET_MIN,
        "history_and_training_disabled": hide_history,
        "conversation_mode": _conversation_mode(model),
        "force_paragen": False,
        "force_rate_limit": False,
        **thinking_fields(model.family, request.reasoning_effort),
    }


def sent_messages(request: ChatRequest) -> List[ChatMessage]:
    """The messages the upstream reads (before o1-style folding): our system messages, then the
    history with its tool traffic as protocol text. Usage counts these, not the client's messages:
    the tools block and the format instruction are prompt the model reads too."""
    return _preface(request) + render_history(request.messages)


def _preface(request: ChatRequest) -> List[ChatMessage]:
    """The system messages we add: the tools protocol first, then the response format."""
    preface = []
    if request.tools is not None and request.tools.choice != "none":
        preface.append(ChatMessage("system", (protocol_text(request.tools),)))
    if request.output_format is not None:
        preface.append(ChatMessage("system", (request.output_format.instruction(),)))
    return preface


def _conversation_mode(model: ModelSpec) -> Dict[str, Any]:
    if model.gizmo_id is None:
        return {"kind": "primary_assistant"}
    # A GPT: the upstream wants the GPT's whole info alongside its id (as the web page sends it).
    return {"kind": "gizmo_interaction", "gizmo_id": model.gizmo_id, "gizmo": model.gizmo}


def _upstream_message(message: ChatMessage, files: Optional[AccountFiles]) -> Dict[str, Any]:
    if not message.images:
        return _message(message.role, {"content_type": "text", "parts": [message.text]}, {})
    if files is None:
        raise bad_request("Image and file inputs need an upload-capable request.", param="messages")
    return _message_with_files(message, files)


def _message_with_files(message: ChatMessage, files: AccountFiles) -> Dict[str, Any]:
    """Images stay where they were among the text parts; documents ride along as attachments only."""
    parts: List[Any] = []
    attachments: List[Dict[str, Any]] = []
    for part in message.parts:
        if not isinstance(part, ImagePart):
            parts.append(part)
            continue
        uploaded = files.resolve(part)
        attachments.append(uploaded.attachment())
        if uploaded.kind.is_image:
            parts.append(uploaded.asset_part())
    if not any(isinstance(part, dict) for part in parts):
        content = {"content_type": "text", "parts": ["\n".join(parts)]}
    else:
        content = {"content_type": "multimodal_text", "parts": parts}
    return _message(message.role, content, {"attachments": attachments})


def _message(role: str, content: Dict[str, Any], metadata: Dict[str, Any]) -> Dict[str, Any]:
    return {"id": str(uuid.uuid4()), "author": {"role": role}, "content": content, "metadata": metadata}


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
