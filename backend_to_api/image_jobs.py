"""Image turns for /v1/images/*: the request, reading the turn, waiting for a late result, the images.

Today's image model (spec backend-api-2026.md 3.7) is asked with ``system_hints: ["picture_v2"]``
and model ``auto``; edits put ``image_asset_pointer`` parts before the prompt. Its result is a tool
(sometimes assistant) message whose ``multimodal_text`` parts point at ``sediment://`` (new) or
``file-service://`` (old) files. Partial previews (``metadata.generation.height`` below ``height``)
are skipped (image_results.py reads all that). A turn may end with only ``metadata.image_gen_task_id``:
the image is then waited for by a ``ResultWaiter`` (polling the stored conversation; the WebSocket
``conversation-update`` path can be another one). A content-policy refusal is a 400, never an empty 200.

The turn itself goes through ChatService (tokens, pool, limits, 401 refresh, first event) as a
``CustomTurn``; a chat model named by the client (``gpt-4o``) keeps the older DALL-E-by-chat turn.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from .chat_service import CustomTurn, OpenReply
from .errors import ApiError, UpstreamError
from .image_results import FoundImage, ResultWaiter, async_task, found_images, refusal_in
from .media import FetchedImage, MediaResolver
from .models import ModelFamily, ModelSpec
from .sse.events import CodeDelta, ConversationId, Event, Finish, MessageFinished, StreamEnd, TextDelta, \
    UpstreamFailure
from .translate.fetch import Fetched
from .translate.uploads import AccountFiles
from .upstream.reply import watched_batches

PICTURE_HINT = "picture_v2"
PICTURE_SLUG = "auto"  # [A] and [G] send auto; the server routes it to the image model
TICK = 0.5  # how often a silent turn checks that the client is still there
MASK_NOTE = "(The last image is a mask: edit only where it is transparent.)"
TIMEZONE_OFFSET_MIN = -480


@dataclass(frozen=True)
class ImageSources:
    """What an edit starts from: the images, then the optional mask."""

    images: Sequence[Fetched]
    mask: Optional[Fetched] = None


def picture_model(name: str) -> ModelSpec:
    """The model a picture_v2 turn runs as: the client's name, the upstream's ``auto``."""
    return ModelSpec(name, ModelFamily(family=name, slug=PICTURE_SLUG, settings_key="", tokenizer="o200k_base"))


def picture_turn(name: str, prompt: str, sources: Optional[ImageSources]) -> CustomTurn:
    def payload(files: Optional[AccountFiles]) -> dict:
        return picture_payload(prompt, sources, files)

    return CustomTurn(picture_model(name), payload)


def picture_payload(prompt: str, sources: Optional[ImageSources], files: Optional[AccountFiles]) -> dict:
    """One user message, the hint on the body and on the message. History stays on: a result that
    comes after the turn can only be found in the stored conversation (hidden afterwards if configured)."""
    parts: List[Any] = []
    attachments: List[dict] = []
    if sources is not None:
        if files is None:
            raise ApiError(503, "Image uploads are not available.", "server_error", code="uploads_unavailable")
        for fetched in [*sources.images, *([sources.mask] if sources.mask else [])]:
            uploaded = files.resolve_fetched(fetched)
            parts.append(uploaded.asset_part())
            attachments.append(uploaded.attachment())
        if sources.mask is not None:
            prompt = f"{prompt}\n\n{MASK_NOTE}"
    parts.append(prompt)
    content = {"content_type": "multimodal_text" if attachments else "text", "parts": parts}
    message = {"id": str(uuid.uuid4()), "author": {"role": "user"}, "create_time": time.time(), "content": content,
               "metadata": {"system_hints": [PICTURE_HINT], **({"attachments": attachments} if attachments else {})}}
    return {"action": "next", "messages": [message], "parent_message_id": str(uuid.uuid4()), "model": PICTURE_SLUG,
            "timezone_offset_min": TIMEZONE_OFFSET_MIN, "history_and_training_disabled": False,
            "conversation_mode": {"kind": "primary_assistant"}, "system_hints": [PICTURE_HINT],
            "force_paragen": False, "force_rate_limit": False}


# --- what a turn said ----------------------------------------------------------------------------

@dataclass
class TurnRecord:
    """Everything an image turn said that matters here, kept from its typed events."""

    conversation_id: Optional[str] = None
    text: List[str] = field(default_factory=list)  # assistant text addressed to the user
    messages: Dict[str, Mapping[str, Any]] = field(default_factory=dict)  # id -> latest snapshot
    failure: Optional[UpstreamFailure] = None
    complete: bool = False  # [DONE] or a finish came: the turn is whole
    dalle_call: str = ""  # the older DALL-E tool's JSON call (its "prompt" is the revised prompt)

    def dalle_prompt(self) -> Optional[str]:
        try:
            call = json.loads(self.dalle_call)
        except ValueError:
            return None
        prompt = call.get("prompt") if isinstance(call, dict) else None
        return prompt if isinstance(prompt, str) and prompt else None

    def feed(self, event: Event) -> None:
        message = getattr(event, "message", None)
        message_id = getattr(event, "message_id", None)
        if isinstance(message, Mapping) and message and isinstance(message_id, str):
            self.messages[message_id] = message
        if isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, CodeDelta) and event.recipient.startswith("dalle"):
            self.dalle_call += event.text
        elif isinstance(event, ConversationId):
            self.conversation_id = event.conversation_id
        elif isinstance(event, UpstreamFailure):
            self.failure = event
        elif isinstance(event, (StreamEnd, Finish)):
            self.complete = True
        elif isinstance(event, MessageFinished) and event.role == "assistant":
            self.complete = self.complete or event.message.get("end_turn") is True


def read_turn(opened: OpenReply, client_gone: Callable[[], bool], deadline: float) -> TurnRecord:
    """Read the whole turn (bounded by ``deadline``, a time.monotonic() value)."""
    record = TurnRecord()
    for batch in watched_batches(chain([opened.pending], opened.reply.batches(timeout=TICK)), client_gone, deadline,
                                 "the image turn"):
        for event in batch:
            record.feed(event)
        if record.failure is not None or any(isinstance(event, StreamEnd) for event in batch):
            break
    return record


def policy_violation(detail: str) -> ApiError:
    return ApiError(400, f"Your request was rejected by the upstream's content policy: {detail[:1000]}",
                    "invalid_request_error", code="content_policy_violation", param="prompt",
                    headers={"x-should-retry": "false"})


# --- from a turn to images ------------------------------------------------------------------------

def turn_images(record: TurnRecord, waiter: ResultWaiter, deadline: float, picture: bool) -> List[FoundImage]:
    """The images a turn produced, waiting for a late one; refusals and failures raise."""
    messages = list(record.messages.values())
    refusal = refusal_in(messages, record.failure)
    if refusal is not None:
        raise policy_violation(refusal)
    if record.failure is not None:
        raise UpstreamError(502, f"The upstream failed mid-reply: {record.failure.message}", code="upstream_error")
    images = found_images(messages)
    if images:
        return images
    if async_task(messages) is not None and record.conversation_id:
        stored = waiter.wait(record.conversation_id, deadline)
        refusal = refusal_in(stored, None)
        if refusal is not None:
            raise policy_violation(refusal)
        return found_images(stored)
    text = "".join(record.text).strip()
    if not record.complete:
        raise UpstreamError(502, "The upstream closed the stream before the image turn was complete.",
                            code="upstream_error")
    if picture and text:
        raise policy_violation(text)  # picture_v2 answers with text alone when it will not draw
    raise ApiError(400, f"No image was generated. The model answered: {text[:1000]}", "invalid_request_error",
                   code="image_generation_failed", headers={"x-should-retry": "false"})


def download(images: List[FoundImage], media: MediaResolver, conversation_id: Optional[str],
             keep_bytes: bool) -> List[FetchedImage]:
    fetched = []
    for image in images:
        scheme, _, file_id = image.pointer.partition("://")
        got = media.pointed_image(scheme, file_id, conversation_id, keep_bytes)
        if got is None:
            raise UpstreamError(502, "A generated image could not be downloaded from the upstream.",
                                code="image_download_failed")
        fetched.append(got)
    return fetched
