"""What an image turn produced, read from message snapshots: finished images, refusals, a late task.

Shared by the turn itself (image_jobs.py) and by whatever waits for a result that comes after the
turn: ``ResultWaiter``. ``ConversationPoller`` is the one that exists (spec backend-api-2026.md 3.7:
poll the stored conversation); the WebSocket ``conversation-update`` path can be a second one that
returns the same message snapshots.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence

from .errors import ClientGone, UpstreamError
from .sse.events import UpstreamFailure
from .sse.interpret import image_part_pointer
from .upstream.client import UpstreamClient
from .upstream.path_segments import segment

log = logging.getLogger(__name__)

POLICY_TYPES = ("content_policy_violation", "content_policy_error")
TICK = 0.5  # how often a wait between polls checks that the client is still there
MIN_POLL = 0.1  # the shortest a poll may take: the last one still gets a chance to answer
_MAX_DEPTH = 6  # how deep a refusal object is looked for inside a message


@dataclass(frozen=True)
class FoundImage:
    pointer: str                  # sediment://... or file-service://...
    prompt: Optional[str] = None  # metadata.dalle.prompt: the prompt the image was drawn from


def found_images(messages: Sequence[Mapping[str, Any]]) -> List[FoundImage]:
    """Finished images of tool or assistant messages, each pointer once; previews left out."""
    found: Dict[str, FoundImage] = {}
    for message in messages:
        if _role(message) not in ("tool", "assistant"):
            continue  # the user's own edit sources are pointers too
        for part in _parts(message):
            pointer = image_part_pointer(part)
            if pointer is not None and pointer not in found:
                dalle = _mapping(_mapping(part.get("metadata")).get("dalle"))
                prompt = dalle.get("prompt")
                found[pointer] = FoundImage(pointer, prompt if isinstance(prompt, str) and prompt else None)
    return list(found.values())


def refusal_in(messages: Sequence[Mapping[str, Any]], failure: Optional[UpstreamFailure]) -> Optional[str]:
    """The refusal's message when the upstream refused on content policy, else None."""
    if failure is not None and "content_policy" in f"{failure.code or ''} {failure.message}":
        return failure.message
    for message in messages:
        if _role(message) in ("tool", "assistant"):
            found = _policy_object(message, 0)
            if found is not None:
                text = found.get("message")
                return text if isinstance(text, str) and text else _message_text(message) or "content policy"
    return None


def async_task(messages: Sequence[Mapping[str, Any]]) -> Optional[str]:
    """The image task id a turn ended with when its image comes later."""
    for message in messages:
        task = _mapping(message.get("metadata")).get("image_gen_task_id")
        if isinstance(task, str) and task:
            return task
    return None


def _policy_object(value: Any, depth: int) -> Optional[Mapping[str, Any]]:
    if depth > _MAX_DEPTH:
        return None
    if isinstance(value, dict):
        code = value.get("code")
        if value.get("type") in POLICY_TYPES or (isinstance(code, str) and "content_policy" in code):
            return value
        values: Any = value.values()
    elif isinstance(value, list):
        values = value
    else:
        return None
    return next((found for item in values if (found := _policy_object(item, depth + 1)) is not None), None)


def _role(message: Mapping[str, Any]) -> str:
    role = _mapping(message.get("author")).get("role")
    return role if isinstance(role, str) else ""


def _parts(message: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    parts = _mapping(message.get("content")).get("parts")
    return [part for part in parts if isinstance(part, dict)] if isinstance(parts, list) else []


def _message_text(message: Mapping[str, Any]) -> str:
    parts = _mapping(message.get("content")).get("parts")
    return "".join(p for p in parts if isinstance(p, str)) if isinstance(parts, list) else ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


# --- a result that comes after the turn -----------------------------------------------------------

class ResultWaiter(Protocol):
    """Waits for what an async image task finally produced: the messages that hold it."""

    def wait(self, conversation_id: str, deadline: float) -> List[Mapping[str, Any]]:
        ...


class ConversationPoller:
    """Polls ``GET /backend-api/conversation/<id>`` until a finished image or a refusal shows up
    (every ``interval`` s for at most ``timeout`` s: 504 after that). Sleeps in ticks, checking
    the client, so one that leaves stops the polling."""

    def __init__(self, upstream: UpstreamClient, access_token: str, account_id: Optional[str], interval: float,
                 timeout: float, client_gone: Callable[[], bool]) -> None:
        self.upstream = upstream
        self._access_token = access_token
        self._account_id = account_id
        self.interval = interval
        self.timeout = timeout
        self.client_gone = client_gone

    def wait(self, conversation_id: str, deadline: float) -> List[Mapping[str, Any]]:
        try:
            path = f"/backend-api/conversation/{segment(conversation_id)}"
        except ValueError:  # the upstream's id is put in our path only when it is an id
            raise UpstreamError(502, "The upstream's conversation id is malformed.", code="upstream_error") from None
        end = min(deadline, time.monotonic() + self.timeout)
        polls = 0
        while True:
            self._sleep(self.interval if polls else 0.0)
            polls += 1
            try:
                messages = self._stored(path, max(end - time.monotonic(), MIN_POLL))
            except UpstreamError as exc:
                if exc.status == 504:  # the poll used up what was left of the wait
                    raise _not_ready(polls) from None
                raise
            if found_images(messages) or refusal_in(messages, None):
                log.info("async image of conversation %s found after %d polls", conversation_id, polls)
                return messages
            if time.monotonic() + self.interval > end:
                raise _not_ready(polls)

    def _stored(self, path: str, timeout: float) -> List[Mapping[str, Any]]:
        response = self.upstream.get(path, "image result", self._access_token, self._account_id,
                                     read_timeout=timeout, connect_timeout=timeout)
        try:
            if response.status_code in (401, 403):
                raise UpstreamError(502, f"The upstream refused to show the conversation ({response.status_code}).",
                                    response.status_code, code="image_result_unavailable")
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            body = None
        finally:
            response.close()
        if body is None:
            log.info("image result poll: upstream answered %s; trying again", response.status_code)
        mapping = _mapping(_mapping(body).get("mapping"))
        return [node["message"] for node in mapping.values()
                if isinstance(node, dict) and isinstance(node.get("message"), dict)]

    def _sleep(self, seconds: float) -> None:
        wake = time.monotonic() + seconds
        while (left := wake - time.monotonic()) > 0:
            time.sleep(min(TICK, left))
            if self.client_gone():
                raise ClientGone()


def _not_ready(polls: int) -> UpstreamError:
    return UpstreamError(504, f"The image was not ready after {polls} checks of the conversation.",
                         code="image_generation_timeout")
