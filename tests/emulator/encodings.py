"""The two stream encodings the real upstream uses, as encoders from steps to SSE frames.

Scenarios describe each message as a series of whole cumulative documents; the classic encoding
sends them as they are, and the v1 encoding sends the JSON-patch-like difference from the previous
document of the same message, the way the newer upstream does.
"""
from __future__ import annotations

from typing import Any

import orjson

from .steps import DataFrame, MessageUpdate, Packed, RawFrame, StreamComplete
from .wire import data_line

Frame = tuple[str, ...]
_TEXT_PATHS = {"text": "/message/content/parts/0", "multimodal_text": "/message/content/parts/0",
               "code": "/message/content/text", "execution_output": "/message/content/text"}
_MISSING = object()


class CumulativeEncoder:
    """Classic encoding: every message event carries the whole text so far."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id

    def preamble(self) -> list[Frame]:
        return []

    def encode(self, step: Any) -> list[Frame]:
        if isinstance(step, MessageUpdate):  # the commonest step first
            return self._message(step)
        if isinstance(step, RawFrame):
            return [step.lines]
        if isinstance(step, DataFrame):
            return [(data_line(step.payload),)]
        if isinstance(step, StreamComplete):
            return self._complete()
        if isinstance(step, Packed):
            return self._packed(step)
        raise TypeError(f"not an encodable step: {step!r}")

    def _message(self, update: MessageUpdate) -> list[Frame]:
        return [("data: " + update.json,)]  # what data_line(document) would give

    def _packed(self, packed: Packed) -> list[Frame]:
        frames = [frame for step in packed.steps for frame in self.encode(step)]
        if not frames:
            return []
        values = "".join(line[len("data: "):] for frame in frames for line in frame if line.startswith("data: "))
        return [(*(line for line in frames[0] if not line.startswith("data: ")), "data: " + values)]

    def _complete(self) -> list[Frame]:
        return []


class DeltaV1Encoder(CumulativeEncoder):
    """v1 encoding: `add` a message once, then send only what changed."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(conversation_id)
        self._sent: dict[str, dict] = {}  # message id -> last document the client holds
        self._added = 0  # the "c" index of the next added message
        self._last_append: tuple[str, str] | None = None  # what a bare {"v": ...} repeats
        self._current: str | None = None  # the message the client's document holds

    def preamble(self) -> list[Frame]:
        return [("event: delta_encoding", 'data: "v1"')]

    def _message(self, update: MessageUpdate) -> list[Frame]:
        # orjson parses the JSON text to the same values as json.loads, in a third of the time.
        document = orjson.loads(update.json)
        message_id = document["message"]["id"]
        previous = self._sent.get(message_id)
        self._sent[message_id] = document
        # Operations apply to the one current message: going back to an earlier one (a status
        # message closed after the thinking) needs it added again, whole.
        if previous is None or message_id != self._current:
            self._current = message_id
            self._last_append = None
            operation = {"p": "", "o": "add", "v": document, "c": self._added}
            self._added += 1
        else:
            operation = self._compact(message_operations(previous["message"], document["message"]))
        return [] if operation is None else [("event: delta", data_line(operation))]

    def _compact(self, operations: list[dict]) -> dict | None:
        if not operations:
            return None
        if len(operations) > 1:
            self._last_append = None
            return {"p": "", "o": "patch", "v": operations}
        operation = operations[0]
        key = (operation["p"], operation["o"])
        if operation["o"] == "append" and key == self._last_append:
            return {"v": operation["v"]}  # the common case: more text on the same path
        self._last_append = key if operation["o"] == "append" else None
        return operation

    def _complete(self) -> list[Frame]:
        return [(data_line({"type": "message_stream_complete",
                            "conversation_id": self.conversation_id}),)]


def message_operations(old: dict, new: dict) -> list[dict]:
    """The v1 operations that turn message `old` into `new` (times are not diffed, as upstream)."""
    operations = _content_operations(old["content"], new["content"])
    for key in ("status", "end_turn"):
        if old.get(key) != new.get(key):
            operations.append({"p": f"/message/{key}", "o": "replace", "v": new.get(key)})
    changed = {key: value for key, value in new["metadata"].items()
               if old["metadata"].get(key, _MISSING) != value}
    if changed:
        operations.append({"p": "/message/metadata", "o": "append", "v": changed})
    return operations


def _content_operations(old: dict, new: dict) -> list[dict]:
    if old == new:
        return []
    if old.get("content_type") == new.get("content_type") == "thoughts":
        operations = _thoughts_operations(old, new)
        if operations is not None:
            return operations
    path = _TEXT_PATHS.get(new.get("content_type"))
    if path is None or old.get("content_type") != new.get("content_type"):
        return [{"p": "/message/content", "o": "replace", "v": new}]
    old_text, new_text = _text(old), _text(new)
    if new_text == old_text:  # something beside the text changed
        return [{"p": "/message/content", "o": "replace", "v": new}]
    if new_text.startswith(old_text):
        return [{"p": path, "o": "append", "v": new_text[len(old_text):]}]
    # Upstream rewrote the text: send it whole rather than a `truncate`, whose length would be
    # counted in the browser's UTF-16 units and so differ from Python's for emoji.
    return [{"p": path, "o": "replace", "v": new_text}]


def _thoughts_operations(old: dict, new: dict) -> list[dict] | None:
    """Thoughts grow as the 2026 upstream sends them: appends to `/message/content/thoughts/N/summary`
    and `.../content`, new thoughts appended to the list; None when only a replace can say it."""
    before, after = old.get("thoughts", []), new.get("thoughts", [])
    if len(after) < len(before) or {k: v for k, v in old.items() if k != "thoughts"} != {
            k: v for k, v in new.items() if k != "thoughts"}:
        return None
    operations: list[dict] = []
    for index, (was, now) in enumerate(zip(before, after)):
        if set(was) - set(now):
            return None
        for key, value in now.items():
            path = f"/message/content/thoughts/{index}/{key}"
            previous = was.get(key, _MISSING)
            if isinstance(value, str) and isinstance(previous, str) and value.startswith(previous):
                if value != previous:
                    operations.append({"p": path, "o": "append", "v": value[len(previous):]})
            elif previous != value:
                operations.append({"p": path, "o": "replace" if previous is not _MISSING else "add", "v": value})
    if len(after) > len(before):
        operations.append({"p": "/message/content/thoughts", "o": "append", "v": after[len(before):]})
    return operations


def _text(content: dict) -> str:
    if "parts" in content:
        first = content["parts"][0] if content["parts"] else ""
        return first if isinstance(first, str) else ""
    return content.get("text") or ""


def encoder_for(encoding: str, conversation_id: str) -> CumulativeEncoder:
    encoder = DeltaV1Encoder if encoding == "v1" else CumulativeEncoder
    return encoder(conversation_id)
