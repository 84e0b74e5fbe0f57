"""Message documents and side frames shaped like the real upstream's (see the shared spec).

A `LiveMessage` is one message of the reply as it grows; every change returns a `MessageUpdate`
holding the whole event as JSON text, a snapshot an encoder can keep to diff later ones against.
"""
from __future__ import annotations

import copy
import time
import uuid
from datetime import datetime, timezone
from typing import Callable

from .steps import MessageUpdate, RawFrame
from .wire import to_json

# Stand-ins for the two fields a text event changes (see `text_run`): strings no message holds.
_TEXT_HOLE, _TIME_HOLE = "\0text\0", "\0update_time\0"


class LiveMessage:
    def __init__(self, conversation_id: str, message: dict) -> None:
        self.conversation_id = conversation_id
        self.message = message

    @property
    def id(self) -> str:
        return self.message["id"]

    def set_text(self, text: str) -> MessageUpdate:
        self._put_text(text, time.time())
        return self.update(carries_text=True)

    def text_run(self) -> Callable[[str], MessageUpdate]:
        """`set_text` for a run of text events between which nothing else in the message changes,
        as in scenarios.grow (its scenario waits at a `yield` in between).

        The first event finds where the text and update_time go in the event's JSON; the later
        ones only serialize those two. Same JSON as `set_text`, and serializing the whole event is
        most of the emulator's work per event.
        """
        shape: tuple = ()  # found at the first event; None when it cannot be

        def set_text(text: str) -> MessageUpdate:
            nonlocal shape
            if shape == ():
                shape = self._text_shape()
            if shape is None:
                return self.set_text(text)
            head, middle, tail, text_first = shape
            now = time.time()
            self._put_text(text, now)
            # repr() is what json writes for a finite float, which time.time() always is.
            first, second = (to_json(text), repr(now)) if text_first else (repr(now), to_json(text))
            return MessageUpdate(head + first + middle + second + tail, carries_text=True)

        return set_text

    def _text_shape(self) -> tuple[str, str, str, bool] | None:
        """The event's JSON cut at the text and at update_time, and which comes first; None when
        the stand-ins put there are not found exactly once each (the caller then overwrites them)."""
        self._put_text(_TEXT_HOLE, _TIME_HOLE)
        shape, text_hole, time_hole = self.update().json, to_json(_TEXT_HOLE), to_json(_TIME_HOLE)
        if shape.count(text_hole) != 1 or shape.count(time_hole) != 1:
            return None
        text_first = shape.index(text_hole) < shape.index(time_hole)
        head, _, rest = shape.partition(text_hole if text_first else time_hole)
        middle, _, tail = rest.partition(time_hole if text_first else text_hole)
        return head, middle, tail, text_first

    def _put_text(self, text: str, update_time: float | str) -> None:
        content = self.message["content"]
        if "parts" in content:
            content["parts"][0] = text
        else:
            content["text"] = text
        self.message["update_time"] = update_time

    def finish(self, end_turn: bool | None, finish_type: str | None = None) -> MessageUpdate:
        self.message["status"] = "finished_successfully"
        self.message["end_turn"] = end_turn
        if finish_type:
            self.message["metadata"]["finish_details"] = {"type": finish_type}
        self.message["metadata"]["is_complete"] = True
        return self.update()

    def update(self, carries_text: bool = False) -> MessageUpdate:
        # Serialized now, while the message is as it stands: the one serialization the cumulative
        # encoding needs, and cheaper than a deep copy that would still have to be serialized.
        event = {"message": self.message, "conversation_id": self.conversation_id, "error": None}
        return MessageUpdate(to_json(event), carries_text)


def text_content(text: str = "") -> dict:
    return {"content_type": "text", "parts": [text]}


def code_content() -> dict:
    return {"content_type": "code", "language": "unknown", "response_format_name": None, "text": ""}


def assistant_message(conversation_id: str, parent_id: str, model_slug: str, content: dict,
                      recipient: str = "all") -> LiveMessage:
    metadata = {"citations": [], "content_references": [], "gizmo_id": None,
                "message_type": "next", "model_slug": model_slug,
                "default_model_slug": model_slug, "pad": "AAAAAAAAAAAAAAAA",
                "parent_id": parent_id, "model_switcher_deny": []}
    author = {"role": "assistant", "name": None, "metadata": {}}
    return LiveMessage(conversation_id, _message(author, content, recipient, metadata))


def python_output_message(conversation_id: str, parent_id: str, model_slug: str,
                          code: str, output: str) -> LiveMessage:
    """The code interpreter's result, complete in one event as upstream sends it."""
    now = time.time()
    result = {"status": "success", "run_id": str(uuid.uuid4()), "start_time": now,
              "update_time": now, "end_time": now, "code": code,
              "final_expression_output": output, "in_kernel_exception": None,
              "system_exception": None, "messages": [], "jupyter_messages": [],
              "timeout_triggered": None}
    metadata = {"is_complete": True, "aggregate_result": result, "message_type": "next",
                "model_slug": model_slug, "default_model_slug": model_slug,
                "parent_id": parent_id}
    author = {"role": "tool", "name": "python", "metadata": {}}
    content = {"content_type": "execution_output", "text": output}
    message = _message(author, content, "all", metadata, status="finished_successfully")
    return LiveMessage(conversation_id, message)


def tool_message(conversation_id: str, parent_id: str, model_slug: str, name: str,
                 content: dict) -> LiveMessage:
    """A tool's result (browser quotes, DALL-E images), complete in one event."""
    metadata = {"is_complete": True, "message_type": "next", "model_slug": model_slug,
                "default_model_slug": model_slug, "parent_id": parent_id}
    author = {"role": "tool", "name": name, "metadata": {}}
    return LiveMessage(conversation_id, _message(author, content, "all", metadata,
                                                 status="finished_successfully"))


def user_echo(conversation_id: str, user_message: dict) -> MessageUpdate:
    """The request's user message as upstream repeats it at the start of a reply."""
    author = {"role": "user", "name": None, "metadata": {}}
    metadata = {"request_id": str(uuid.uuid4()), "timestamp_": "absolute", "message_type": None}
    message = _message(author, copy.deepcopy(user_message["content"]), "all", metadata,
                       status="finished_successfully")
    message["id"] = user_message["id"]
    return LiveMessage(conversation_id, message).update()


def _message(author: dict, content: dict, recipient: str, metadata: dict,
             status: str = "in_progress") -> dict:
    return {"id": str(uuid.uuid4()), "author": author, "create_time": time.time(),
            "update_time": None, "content": content, "status": status, "end_turn": None,
            "weight": 1.0, "metadata": metadata, "recipient": recipient, "channel": None}


def timestamp_frame() -> RawFrame:
    """The bare timestamp data line some mirrors send first (not JSON)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return RawFrame((f"data: {stamp}",))


def moderation_event(conversation_id: str, message_id: str) -> dict:
    return {"type": "moderation", "conversation_id": conversation_id, "message_id": message_id,
            "is_completion": False,
            "moderation_response": {"flagged": False, "blocked": False,
                                    "moderation_id": f"modr-{uuid.uuid4().hex[:24]}"}}


def title_event(conversation_id: str) -> dict:
    return {"type": "title_generation", "title": "Emulated conversation",
            "conversation_id": conversation_id}


def detail_metadata_event(conversation_id: str, model_slug: str) -> dict:
    return {"type": "conversation_detail_metadata", "banner_info": None, "blocked_features": [],
            "model_limits": [], "limits_progress": [], "default_model_slug": model_slug,
            "conversation_id": conversation_id}


def error_event(conversation_id: str, error: str) -> dict:
    return {"message": None, "conversation_id": conversation_id, "error": error}


# --- the 2026 stream's typed events (spec backend-api-2026.md 3.3), same field names -----------

def input_message_event(conversation_id: str, user_message: dict) -> dict:
    """The echo of the user's turn as a typed event (the 2026 stream's replacement for user_echo)."""
    return {"type": "input_message", "input_message": copy.deepcopy(user_message),
            "conversation_id": conversation_id}


def resume_token_event(conversation_id: str) -> dict:
    return {"type": "resume_conversation_token", "kind": "topic", "token": "emu-resume-" + uuid.uuid4().hex,
            "conversation_id": conversation_id}


def marker_event(conversation_id: str, message_id: str, marker: str, event: str) -> dict:
    return {"type": "message_marker", "conversation_id": conversation_id, "message_id": message_id,
            "marker": marker, "event": event}


def ste_metadata_event(conversation_id: str, model_slug: str, turn_exchange_id: str) -> dict:
    return {"type": "server_ste_metadata", "conversation_id": conversation_id,
            "metadata": {"model_slug": model_slug, "turn_exchange_id": turn_exchange_id,
                         "tool_invoked": False, "tool_name": None, "turn_use_case": "text"}}


def stream_complete_event(conversation_id: str) -> dict:
    return {"type": "message_stream_complete", "conversation_id": conversation_id}


def blocked_moderation_event(conversation_id: str, message_id: str) -> dict:
    event = moderation_event(conversation_id, message_id)
    event["moderation_response"].update(flagged=True, blocked=True)
    return event


def status_message(conversation_id: str, parent_id: str, model_slug: str, initial_text: str) -> LiveMessage:
    """The tool-role status message that marks thinking started (`initial_text`); its
    `finished_text` comes when thinking ends ([G]). Nothing in it is the answer."""
    metadata = {"initial_text": initial_text, "message_type": "next", "model_slug": model_slug,
                "default_model_slug": model_slug, "parent_id": parent_id}
    author = {"role": "tool", "name": "a8km123", "metadata": {}}
    return LiveMessage(conversation_id, _message(author, text_content(), "all", metadata))
