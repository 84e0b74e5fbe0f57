"""Upstream SSE events -> typed events (``sse.events``), for both backend-api stream encodings.

Cumulative encoding: each event is a whole snapshot of one message. v1 delta encoding: events are
operations on one document (``sse.patch``); after each frame the rebuilt document goes through the
same snapshot logic, so both encodings share one code path and produce identical events.

State is kept per message id, because one turn holds several messages (assistant text, code addressed
to a tool, the tool's output, more assistant text) and each one's text starts from empty.

The 2026 stream (spec backend-api-2026.md, section 3) adds typed events (``{"type": ...}``): each
is either read on purpose (``server_ste_metadata``: the model that answered; ``stream_handoff``: the
WebSocket topic; a blocking ``moderation``: a failure) or ignored on purpose (``_SILENT_TYPES``);
none is ever text. Thinking (``thoughts`` content, the ``analysis`` channel) is ReasoningDelta;
the ``reasoning_recap`` caption ("Thought for 8s") is dropped: it is the page's chrome, not thinking.
A ``data:`` line may hold several JSON values back to back; each is interpreted in turn.

Robustness: odd-but-valid JSON (missing keys, wrong types, unknown shapes) is noise and yields
nothing; a v1 frame that cannot be applied yields ``UpstreamFailure(code="bad_delta")``, because
text after it could silently lack characters. Nothing raises from ``feed``.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional

import orjson

from backend_to_api.sse.decoder import ServerSentEvent
from backend_to_api.sse.events import (
    ActionConfirmation,
    CodeDelta,
    ConversationId,
    Event,
    Finish,
    HandOff,
    ImagePointer,
    MessageFinished,
    ModelSlug,
    ReasoningDelta,
    StreamEnd,
    TextDelta,
    ToolOutputDelta,
    UpstreamFailure,
    is_thinking,
)
from backend_to_api.sse.patch import DeltaDocument, PatchError

_NOT_JSON: Any = object()
_EMPTY: Mapping[str, Any] = {}
_FINISH_REASONS = {"stop": "stop", "interrupted": "stop", "max_tokens": "length"}
_TEXT_TYPES = ("text", "multimodal_text")
_OP_KEYS = ("o", "p", "v")
_MAX_FAILURE_CHARS = 500
_IMAGE_SCHEMES = ("file-service", "sediment")  # sediment: picture_v2's newer pointers
# Typed events that carry nothing a client needs: message markers (first/last token),
# the end-of-turn marker before [DONE], the title, the account's banners and limits, the echo of
# the user's message, a token to resume the stream later (we never do).
_SILENT_TYPES = frozenset(("message_marker", "message_stream_complete", "title_generation",
                           "conversation_detail_metadata", "input_message", "resume_conversation_token"))
_BLOCKED = UpstreamFailure("The upstream's moderation blocked this reply (content policy).",
                           "content_policy_violation")


class ReplyInterpreter:
    """Turns the upstream events of one reply, in order, into typed events. One instance per reply."""

    def __init__(self) -> None:
        self._delta_mode = False
        self._document = DeltaDocument()
        self._conversation_id_sent = False
        self._reported_text: dict[str, str] = {}  # message id -> text the client has already got
        self._finished: set[str] = set()
        self._finish_sent: set[str] = set()
        self._failures_sent: set[tuple[str, Optional[str]]] = set()
        self._conversation: Optional[str] = None
        self._confirmations_sent: set[str] = set()  # message ids whose action confirmation was reported
        self._images_sent: set[tuple[str, str]] = set()  # (message id, file id)
        self._model_slug = ""  # the answering model last reported
        self.said_done = False  # [DONE] came: the upstream has nothing more to say

    def feed(self, sse: ServerSentEvent) -> list[Event]:
        """Interpret one upstream event; returns the typed events it means (often none)."""
        if sse.event == "ping":
            return []
        raw = sse.raw_data
        if raw.strip() == b"[DONE]":
            self.said_done = True
            return [StreamEnd()]
        payload = _parse_json(raw)
        if payload is _NOT_JSON:  # rare: perhaps several values on one line ({"v":"a"}{"v":"b"})
            events: list[Event] = []
            event = sse.event
            for value in _json_values(raw):
                events += self._interpret(event, value, raw)
                # "v1" then frames: only the first value is the encoding
                event = None if event == "delta_encoding" else event
            return events
        return self._interpret(sse.event, payload, raw)

    def _interpret(self, event: Optional[str], payload: Any, raw: bytes) -> list[Event]:
        if event == "delta_encoding":
            return self._set_encoding(payload, raw)
        if self._is_delta(event, payload):
            return self._apply_delta(payload)
        if not isinstance(payload, dict):
            return []
        if event == "server_ste_metadata":  # the event name alone says it (spec 3.3)
            return self._typed("server_ste_metadata", payload)
        return self._snapshot(payload)

    def _set_encoding(self, payload: Any, raw: bytes) -> list[Event]:
        if payload == "v1" or raw.strip() == b"v1":
            self._delta_mode = True
            return []
        return self._failure(UpstreamFailure("unsupported stream delta encoding", "unsupported_encoding"))

    def _is_delta(self, event: Optional[str], payload: Any) -> bool:
        if event != "delta" and not self._delta_mode:
            return False
        # In v1 mode plain `data:` objects carrying "message" are whole snapshots, not operations,
        # and typed events ("type") never are.
        return (isinstance(payload, dict) and "message" not in payload and "type" not in payload
                and any(k in payload for k in _OP_KEYS))

    def _apply_delta(self, frame: Any) -> list[Event]:
        try:
            self._document.apply(frame)
        except PatchError as exc:
            return self._failure(UpstreamFailure(f"malformed v1 delta frame: {exc}", "bad_delta"))
        document = self._document.document
        return self._snapshot(document) if isinstance(document, dict) else []

    def _snapshot(self, payload: Mapping[str, Any]) -> list[Event]:
        """One cumulative event (or the rebuilt v1 document): everything it newly says."""
        message = payload.get("message")
        has_message = isinstance(message, dict)
        kind = payload.get("type")
        # Typed side channels are never text, even when they carry an "error" about their own
        # feature (a failed title), unless the type is an error.
        if isinstance(kind, str) and not has_message:
            return self._typed(kind, payload)
        events = self._failure(_failure_in(payload))
        events += self._conversation_id(payload.get("conversation_id"))
        if isinstance(message, dict):
            events += self._message(message)
        return events

    def _typed(self, kind: str, payload: Mapping[str, Any]) -> list[Event]:
        """A typed event (spec 2026, 3.3): what it means, or nothing on purpose."""
        if kind in _SILENT_TYPES:
            return []
        if kind == "error":  # {"type": "error", "error"|"detail"|"message": ..., "code"?}
            return self._failure(_failure_in(payload) or _failure_from(payload, 0))
        if kind == "server_ste_metadata":
            metadata = _mapping(payload.get("metadata"))
            return self._model(metadata.get("model_slug")) + _turn_topic(metadata.get("turn_exchange_id"))
        if kind == "stream_handoff":
            return _hand_offs(payload.get("options"))
        if kind == "moderation" and _mapping(payload.get("moderation_response")).get("blocked") is True:
            # A blocked turn: the page hides the text and shows a policy notice. Silence would be an
            # empty or cut reply with no reason; the client gets the reason as an error instead.
            return self._failure(_BLOCKED)
        return []  # moderation that only flags (the page shows the text), types nobody has seen yet

    def _model(self, slug: Any) -> list[Event]:
        if not isinstance(slug, str) or not slug or slug == self._model_slug:
            return []
        self._model_slug = slug
        return [ModelSlug(slug)]

    def _failure(self, failure: Optional[UpstreamFailure]) -> list[Event]:
        # A v1 document keeps its "error" field for every later frame: report each error once.
        if failure is None or (failure.message, failure.code) in self._failures_sent:
            return []
        self._failures_sent.add((failure.message, failure.code))
        return [failure]

    def _conversation_id(self, value: Any) -> list[Event]:
        if self._conversation_id_sent or not isinstance(value, str) or not value:
            return []
        self._conversation_id_sent = True
        self._conversation = value
        return [ConversationId(value)]

    def _message(self, message: Mapping[str, Any]) -> list[Event]:
        author = _mapping(message.get("author"))
        role = _str(author.get("role"))
        if role not in ("assistant", "tool"):  # user/system: the echo of our request; others unknown
            return []
        message_id = _str(message.get("id"))
        events = self._model(_mapping(message.get("metadata")).get("model_slug")) if role == "assistant" else []
        events += self._delta(message, message_id, role, _str(author.get("name")))
        if role == "tool":
            events += self._images(message, message_id)
        if _str(message.get("status")).startswith("finished") and message_id not in self._finished:
            self._finished.add(message_id)
            events.append(MessageFinished(message_id, role, message))
        if role == "assistant":
            events += self._finish(message, message_id)
        return events + self._confirmation(message, message_id, role, author)

    def _delta(self, message: Mapping[str, Any], message_id: str, role: str, name: str) -> list[Event]:
        content = _mapping(message.get("content"))
        content_type = _str(content.get("content_type"))
        recipient = message.get("recipient")
        if role == "assistant" and content_type == "thoughts":
            return self._reasoning(message_id, _thoughts_text(content))
        if role == "assistant" and content_type not in _TEXT_TYPES and content_type != "code":
            return []  # other assistant content (reasoning_recap, ...): not text for anyone
        text = self._advance(message_id, _content_text(content))
        if not text:
            return []
        if role == "assistant" and message.get("channel") == "analysis":
            return [ReasoningDelta(text, message_id)]  # gpt-5 / o3 thinking on its own channel
        if role == "tool":
            return [ToolOutputDelta(text, message_id, name, content_type, message)]
        if content_type in _TEXT_TYPES and recipient in (None, "all"):
            return [TextDelta(text, message_id, message)]
        # Code, or text addressed to a tool (recipient bio, a GPT action, ...): not for the user.
        return [CodeDelta(text, message_id, _str(recipient), message)]

    def _images(self, message: Mapping[str, Any], message_id: str) -> list[Event]:
        """Each image pointer of a tool message, once (a tool message is re-sent as it grows)."""
        events: list[Event] = []
        for scheme, file_id in _image_file_ids(message):
            if (message_id, file_id) not in self._images_sent:
                self._images_sent.add((message_id, file_id))
                events.append(ImagePointer(file_id, message_id, scheme))
        return events

    def _confirmation(self, message: Mapping[str, Any], message_id: str, role: str,
                      author: Mapping[str, Any]) -> list[Event]:
        """A GPT action asking for the user's go-ahead, once its message is complete."""
        if message_id in self._confirmations_sent or message.get("status") != "finished_successfully":
            return []
        server = _mapping(_mapping(_mapping(message.get("metadata")).get("jit_plugin_data")).get("from_server"))
        if server.get("type") != "confirm_action":
            return []
        actions = _mapping(server.get("body")).get("actions")
        for action in actions if isinstance(actions, list) else ():
            allow = _mapping(_mapping(action).get("always_allow"))
            if _mapping(action).get("type") == "always_allow" and allow.get("operation_hash"):
                self._confirmations_sent.add(message_id)
                name = author.get("name") if isinstance(author.get("name"), str) else None
                return [ActionConfirmation(message_id, role, name, _str(allow.get("target_message_id")),
                                           _str(allow.get("operation_hash")), self._conversation)]
        return []

    def _reasoning(self, message_id: str, thoughts: str) -> list[Event]:
        """Visible thinking: its own message id, so its own baseline, like any text."""
        text = self._advance(message_id, thoughts)
        return [ReasoningDelta(text, message_id)] if text else []

    def _advance(self, message_id: str, text: str) -> str:
        """The part of ``text`` the client has not seen yet; never garbage, never a duplicate."""
        reported = self._reported_text.get(message_id, "")
        if text is reported:  # v1 frames that did not touch this text share the same object
            return ""
        if text.startswith(reported):
            self._reported_text[message_id] = text
            return text[len(reported):]
        # Upstream rewrote the text. If it only shrank, keep the longer baseline so text growing back
        # over what the client already has is not sent twice; otherwise re-baseline on the new text.
        if not reported.startswith(text):
            self._reported_text[message_id] = text
        return ""

    def _finish(self, message: Mapping[str, Any], message_id: str) -> list[Event]:
        # Only an answer addressed to the user can end the turn; a code message to a tool that
        # "stops" (or a message with end_turn false) hands over to the tool instead, and thinking
        # that "stops" is followed by the answer.
        if message_id in self._finish_sent or message.get("recipient") not in (None, "all"):
            return []
        details = _mapping(_mapping(message.get("metadata")).get("finish_details"))
        reason = _FINISH_REASONS.get(_str(details.get("type")))
        # A reply cut at the token limit comes with end_turn false (the web page then offers
        # "Continue generating"): that is still the end of this reply, as finish_reason "length".
        if reason is None or (message.get("end_turn") is False and reason != "length") or is_thinking(message):
            return []
        self._finish_sent.add(message_id)
        return [Finish(reason)]


def _parse_json(data: bytes) -> Any:
    try:
        # Every upstream event is parsed here, from the bytes as they came: ~3x faster than json,
        # and no decoding to str first (which orjson would only encode back to UTF-8).
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:  # what orjson refuses but json reads: invalid UTF-8 (as U+FFFD), lone surrogate escapes,
        # NaN, nesting over 1024
        return json.loads(data.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):  # bare timestamps, truncated frames, absurd nesting
        return _NOT_JSON


def _json_values(data: bytes) -> list[Any]:
    """Several JSON values back to back on one line (spec 2026, 3.1), or [] when the line is not
    exactly that (a bare timestamp starts with a number, a truncated frame ends early: noise)."""
    text = data.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position = 0
    try:
        while True:
            position = len(text) - len(text[position:].lstrip())
            if position >= len(text):
                return values if len(values) > 1 else []
            value, position = decoder.raw_decode(text, position)
            values.append(value)
    except (ValueError, RecursionError):
        return []


def _hand_offs(options: Any) -> list[Event]:
    """``stream_handoff`` options: the WebSocket topics to follow (``subscribe_ws_topic``)."""
    events: list[Event] = []
    for option in options if isinstance(options, list) else ():
        topic = _mapping(option).get("topic_id")
        if _mapping(option).get("type") == "subscribe_ws_topic" and isinstance(topic, str) and topic:
            events.append(HandOff(topic))
    return events


def _turn_topic(turn_exchange_id: Any) -> list[Event]:
    """The topic [A] derives from the turn's id (spec 3.3): followed only when no ``stream_handoff``
    named one and the HTTP stream ended with nothing shown (upstream/reply.py)."""
    if not isinstance(turn_exchange_id, str) or not turn_exchange_id:
        return []
    return [HandOff(f"conversation-turn-{turn_exchange_id}", derived=True)]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else _EMPTY


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _content_text(content: Mapping[str, Any]) -> str:
    """content.text (code, execution_output, quotes) or the string parts (text, multimodal_text)."""
    text = content.get("text")
    if isinstance(text, str):
        return text
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]  # the usual case: keep the object, so an untouched v1 text is `is`-equal
    return "".join(part for part in parts if isinstance(part, str))


def _image_file_ids(message: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(scheme, file id) of DALL-E's and picture_v2's ``image_asset_pointer`` parts (partial previews
    left out), then of python's ``aggregate_result`` image messages."""
    parts = _mapping(message.get("content")).get("parts")
    pointers: list[Any] = [image_part_pointer(part) for part in (parts if isinstance(parts, list) else ())]
    result = _mapping(_mapping(message.get("metadata")).get("aggregate_result"))
    outputs = result.get("messages")
    for output in outputs if isinstance(outputs, list) else ():
        if isinstance(output, dict) and output.get("message_type") == "image":
            pointers.append(output.get("image_url"))
    return [found for pointer in pointers if (found := _split_pointer(pointer)) is not None]


def image_part_pointer(part: Any) -> Optional[str]:
    """The pointer (``sediment://id`` or ``file-service://id``) of a finished image part, else None:
    another kind of part, another scheme, or a partial preview. Read by the chat reply (here) and
    by the images API (image_results.py)."""
    if not isinstance(part, dict) or part.get("content_type") != "image_asset_pointer" or is_preview(part):
        return None
    pointer = part.get("asset_pointer")
    return pointer if _split_pointer(pointer) is not None else None


def _split_pointer(pointer: Any) -> Optional[tuple[str, str]]:
    scheme, _, file_id = pointer.partition("://") if isinstance(pointer, str) else ("", "", "")
    return (scheme, file_id) if scheme in _IMAGE_SCHEMES and file_id else None


def is_preview(part: Mapping[str, Any]) -> bool:
    """A picture_v2 image part still being drawn: ``metadata.generation.height`` below ``height``."""
    generated = _mapping(_mapping(part.get("metadata")).get("generation")).get("height")
    height = part.get("height")
    return isinstance(generated, int) and isinstance(height, int) and generated < height


def _thoughts_text(content: Mapping[str, Any]) -> str:
    """``thoughts: [{"summary", "content"}, ...]`` as text. The list and the last thought grow;
    a separator only follows a part once text after it exists, so the text only ever extends."""
    thoughts = content.get("thoughts")
    texts: list[str] = []
    for thought in thoughts if isinstance(thoughts, list) else ():
        thought = _mapping(thought)
        pieces = [_str(thought.get("summary")), _str(thought.get("content")) or _chunks_text(thought)]
        texts.append("\n".join(piece for piece in pieces if piece))
    return "\n\n".join(text for text in texts if text)


def _chunks_text(thought: Mapping[str, Any]) -> str:
    """A thought whose text so far is only in ``chunks`` (its ``content`` comes when it is whole)."""
    chunks = thought.get("chunks")
    return "".join(chunk for chunk in chunks if isinstance(chunk, str)) if isinstance(chunks, list) else ""


def _failure_in(payload: Mapping[str, Any]) -> Optional[UpstreamFailure]:
    error, detail = payload.get("error"), payload.get("detail")
    if error is None and detail is None:  # nearly every event
        return None
    return _failure_from(error, 0) or _failure_from(detail, 0)


def _failure_from(value: Any, depth: int) -> Optional[UpstreamFailure]:
    """An error value: a string, ``{"message"|"detail": ..., "code": ...}``, or a list (422 details)."""
    if isinstance(value, str):
        return UpstreamFailure(value[:_MAX_FAILURE_CHARS]) if value.strip() else None
    if isinstance(value, list) and value:
        return UpstreamFailure(_compact(value))
    if not isinstance(value, dict) or not value:
        return None
    inner = value.get("message") or value.get("detail")
    nested = _failure_from(inner, depth + 1) if depth < 2 else None
    code = _code(value.get("code")) or (nested.code if nested else None)
    return UpstreamFailure(nested.message if nested else _compact(value), code)


def _code(value: Any) -> Optional[str]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _compact(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):
        text = "upstream error"
    return text[:_MAX_FAILURE_CHARS]
