"""One Response object, grown piece by piece: thinking, text, function calls, then the end.

Every method returns the stream events it causes (bytes, b"" when not streaming), and updates the
Response object the non-streamed answer, the final ``response.completed`` event and the store all
share. Items open and close as OpenAI's stream does: one item at a time, each announced by
``output_item.added``, its parts by ``content_part.added`` / ``reasoning_summary_part.added``, its
text by deltas, then the ``.done`` events in reverse order and ``output_item.done``. An event is
serialized when it is made, so it shows the objects as they are at that moment.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .events import EventSequence


def new_id(prefix: str) -> str:
    """OpenAI-looking ids: a prefix and 48 hex digits (resp_, msg_, fc_, ctc_, rs_)."""
    return prefix + "_" + uuid.uuid4().hex + uuid.uuid4().hex[:16]


@dataclass
class _OpenItem:
    """The output item being streamed, and its text so far (joined once, when it closes)."""

    item: Dict[str, Any]
    index: int
    pieces: List[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class ResponseBuilder:
    def __init__(self, echo: Dict[str, Any], model: str, framed: bool) -> None:
        """``echo``: the request fields a Response repeats (instructions, tools, text, ...)."""
        self.response: Dict[str, Any] = {
            "id": new_id("resp"), "object": "response", "created_at": int(time.time()), "status": "in_progress",
            "background": False, "error": None, "incomplete_details": None, "model": model, "output": [],
            **echo, "usage": None,
        }
        self.events = EventSequence(framed)
        self._open: Optional[_OpenItem] = None

    @property
    def output(self) -> List[Dict[str, Any]]:
        return self.response["output"]

    def start(self) -> List[bytes]:
        return [self.events.event("response.created", response=self.response),
                self.events.event("response.in_progress", response=self.response)]

    def set_model(self, model: str) -> None:
        self.response["model"] = model

    def reasoning(self, text: str) -> List[bytes]:
        """Visible thinking: a reasoning item whose one summary part grows (OpenAI shows a reasoning
        model's thinking only as its summary; the web model's thinking is what its page shows)."""
        out = [] if self._is_open("reasoning") else self._close() + self._open_reasoning()
        current = self._open
        current.pieces.append(text)
        out.append(self.events.event("response.reasoning_summary_text.delta", item_id=current.item["id"],
                                     output_index=current.index, summary_index=0, delta=text))
        return out

    def text(self, text: str) -> List[bytes]:
        out = [] if self._is_open("message") else self._close() + self._open_message()
        current = self._open
        current.pieces.append(text)
        out.append(self.events.event("response.output_text.delta", item_id=current.item["id"],
                                     output_index=current.index, content_index=0, delta=text, logprobs=[]))
        return out

    def function_call(self, call_id: str, name: str, arguments: str) -> List[bytes]:
        """A whole call (the parser gives complete, validated calls): added, its arguments as one
        delta, done."""
        item = {"id": new_id("fc"), "type": "function_call", "status": "in_progress", "arguments": "",
                "call_id": call_id, "name": name}
        return self._whole_call(item, "arguments", arguments, "response.function_call_arguments", name=name)

    def custom_tool_call(self, call_id: str, name: str, text: str) -> List[bytes]:
        """A whole custom (freeform) tool call, streamed as OpenAI streams a ``custom_tool_call``
        (the type has no status)."""
        item = {"id": new_id("ctc"), "type": "custom_tool_call", "call_id": call_id, "name": name, "input": ""}
        return self._whole_call(item, "input", text, "response.custom_tool_call_input")

    def _whole_call(self, item: Dict[str, Any], field: str, value: str, kind: str, **done: Any) -> List[bytes]:
        """A call item: added with an empty ``field``, ``value`` as one delta, ``kind``.done
        (with ``done``'s extra fields), the item done."""
        out = self._close()
        index = self._add(item)
        out.append(self.events.event("response.output_item.added", output_index=index, item=item))
        out.append(self.events.event(kind + ".delta", item_id=item["id"], output_index=index, delta=value))
        item[field] = value
        out.append(self.events.event(kind + ".done", item_id=item["id"], output_index=index, **done,
                                     **{field: value}))
        if "status" in item:
            item["status"] = "completed"
        out.append(self.events.event("response.output_item.done", output_index=index, item=item))
        return out

    def close(self, status: str = "completed") -> List[bytes]:
        """Close the open item, if any: its .done events with the whole text (a message cut short
        is ``incomplete``)."""
        return self._close(status)

    def complete(self, usage: Dict[str, Any], incomplete_reason: Optional[str] = None) -> List[bytes]:
        """The end of a whole reply (``incomplete_reason``: cut short, e.g. max_output_tokens);
        ``usage`` counts the output, so the items are closed first (``close``)."""
        out = self._close("incomplete" if incomplete_reason else "completed")
        self.response["usage"] = usage
        if incomplete_reason:
            self.response["status"] = "incomplete"
            self.response["incomplete_details"] = {"reason": incomplete_reason}
            out.append(self.events.event("response.incomplete", response=self.response))
        else:
            self.response["status"] = "completed"
            out.append(self.events.event("response.completed", response=self.response))
        return out

    def fail(self, code: str, message: str) -> List[bytes]:
        """The reply failed after the stream began: what was produced stays in the output."""
        out = self._close("incomplete")
        self.response["status"] = "failed"
        self.response["error"] = {"code": code, "message": message}
        out.append(self.events.event("response.failed", response=self.response))
        return out

    def _is_open(self, kind: str) -> bool:
        return self._open is not None and self._open.item["type"] == kind

    def _add(self, item: Dict[str, Any]) -> int:
        self.output.append(item)
        return len(self.output) - 1

    def _open_reasoning(self) -> List[bytes]:
        item = {"id": new_id("rs"), "type": "reasoning", "summary": []}
        self._open = _OpenItem(item, self._add(item))
        return [self.events.event("response.output_item.added", output_index=self._open.index, item=item),
                self.events.event("response.reasoning_summary_part.added", item_id=item["id"],
                                  output_index=self._open.index, summary_index=0,
                                  part={"type": "summary_text", "text": ""})]

    def _open_message(self) -> List[bytes]:
        item = {"id": new_id("msg"), "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        self._open = _OpenItem(item, self._add(item))
        return [self.events.event("response.output_item.added", output_index=self._open.index,
                                  item=item),
                self.events.event("response.content_part.added", item_id=item["id"], output_index=self._open.index,
                                  content_index=0, part=_text_part(""))]

    def _close(self, status: str = "completed") -> List[bytes]:
        current, self._open = self._open, None
        if current is None:
            return []
        item, index, text = current.item, current.index, current.text
        if item["type"] == "reasoning":
            part = {"type": "summary_text", "text": text}
            item["summary"] = [part]
            return [self.events.event("response.reasoning_summary_text.done", item_id=item["id"], output_index=index,
                                      summary_index=0, text=text),
                    self.events.event("response.reasoning_summary_part.done", item_id=item["id"],
                                      output_index=index, summary_index=0, part=part),
                    self.events.event("response.output_item.done", output_index=index, item=item)]
        part = _text_part(text)
        item["content"] = [part]
        item["status"] = status
        return [self.events.event("response.output_text.done", item_id=item["id"], output_index=index,
                                  content_index=0, text=text, logprobs=[]),
                self.events.event("response.content_part.done", item_id=item["id"], output_index=index,
                                  content_index=0, part=part),
                self.events.event("response.output_item.done", output_index=index, item=item)]


def _text_part(text: str) -> Dict[str, Any]:
    # logprobs [] as OpenAI sends it when none were asked for (top_logprobs is not honoured here).
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
