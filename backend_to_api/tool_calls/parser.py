"""The model's reply text -> text pieces and tool calls, incrementally (for streaming).

Text comes out as soon as it cannot be the start of a ``<tool_call>`` block: what is held back is
only a tail that may still become the opening tag (``<tool_c``), with the whitespace before it, and
the body of a block until its ``</tool_call>``. Whitespace around calls is layout, not reply text,
and is dropped; everything else the model said comes out, in order.

A complete block is read by repair.CallReader: a valid (or repaired) call comes out as ToolCall, a
block that is not clearly a call comes out as the text it was, tags included, so nothing is lost.

Slips outside the blocks are repaired too:
- calls put in a Markdown code fence: the fence's lines go with the calls (a fence line is held
  like whitespace until what follows shows whether a call comes; one that closes a code block of
  the text, by the count of fences so far, stays text);
- a block whose ``</tool_call>`` never came: at the end of the reply its body is read as a call;
- a reply that is nothing but the call's JSON, without the tags: a reply whose first character is
  ``{`` is held to its end (only then can it be told from a JSON answer) and read as a block.

With ``parallel=False`` only the first call is returned; the blocks after it are dropped (and
logged), not shown as text: the model sees the result of its first call on the next turn and makes
the next call again then, as OpenAI's model would.
"""
from __future__ import annotations

import logging
import re
from typing import List, Optional, Union

from .repair import CallReader
from .toolset import ToolCall, ToolSet

log = logging.getLogger(__name__)

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
FENCE_MARK = "```"
# A code fence's opening line at the end of a text (```, ```xml, ```json ...): held, since the model
# may be about to put a call inside it.
FENCE_OPENING = re.compile(r"\n[ \t]*(?:`{1,2}|```[A-Za-z]*)[ \t]*$")  # or its start

Piece = Union[str, ToolCall]


class ToolCallParser:
    def __init__(self, toolset: ToolSet) -> None:
        self._reader = CallReader(toolset)
        self._parallel = toolset.parallel
        self._held = ""        # outside a block: the tail that may still open one
        self._body: Optional[str] = None  # inside a block: its text so far
        self._gap = ""         # the whitespace dropped before the open block (given back if it is text)
        self._started = False  # any non-whitespace seen (a bare JSON call can only be the whole reply)
        self._bare = False     # the reply started with "{": held whole until finish
        self._fenced = False   # a call was made inside a code fence, whose closing line is still due
        self._fences = 0       # code fence marks in the text so far (odd: inside a code block)
        self._line_start = True  # the text not yet given out starts a line
        self.calls = 0

    def feed(self, text: str) -> List[Piece]:
        out: List[Piece] = []
        if not text:
            return out
        if not self._started:
            self._start(text)
        if self._bare:
            self._held += text
            return out
        self._scan(text, out)
        return out

    def finish(self, whole: bool = True) -> List[Piece]:
        """The rest of the reply. ``whole`` False: the reply was cut short, so an unclosed block or
        a held bare JSON reply may be missing its end, and is given back as text, not read."""
        out: List[Piece] = []
        if self._body is not None:
            body, self._body = self._body, None
            self._block(body, OPEN + body, out, read=whole)
        elif self._bare:
            held, self._held = self._held, ""
            self._block(held, held, out, read=whole)
        elif self._held:
            held, self._held = self._held, ""
            if not self.calls or (held.strip() and not self._fenced):
                self._emit(held, out)
        return out

    def _start(self, text: str) -> None:
        stripped = (self._held + text).lstrip()
        if stripped:
            self._started = True
            self._bare = stripped.startswith("{")

    def _scan(self, text: str, out: List[Piece]) -> None:
        rest: Optional[str] = self._held + text
        self._held = ""
        while rest:
            if self._body is not None:
                rest = self._in_block(rest, out)
            elif self._fenced:
                rest = self._after_fenced_call(rest, out)
            else:
                rest = self._outside(rest, out)

    def _in_block(self, rest: str, out: List[Piece]) -> Optional[str]:
        whole = self._body + rest
        end = whole.find(CLOSE, max(0, len(self._body) - len(CLOSE) + 1))  # not the scanned part again
        if end < 0:
            self._body = whole
            return None
        self._body = None
        self._block(whole[:end], OPEN + whole[:end] + CLOSE, out)
        return whole[end + len(CLOSE):]

    def _outside(self, rest: str, out: List[Piece]) -> Optional[str]:
        start = rest.find(OPEN)
        if start < 0:
            keep = _hold_from(rest, self._line_start)
            self._emit(rest[:keep], out)
            self._held = rest[keep:]
            return None
        before = rest[:start]
        keep = _hold_from(before, self._line_start)
        self._emit(before[:keep], out)
        self._gap = before[keep:]
        self._body = ""
        return rest[start + len(OPEN):]

    def _emit(self, text: str, out: List[Piece]) -> None:
        if text:
            self._fences += text.count(FENCE_MARK)
            self._line_start = text.endswith("\n")
            out.append(text)

    def _after_fenced_call(self, rest: str, out: List[Piece]) -> Optional[str]:
        """After a call the model had put in a code fence: drop the fence's closing line (it
        opened before the call and was dropped with it)."""
        stripped = rest.lstrip()
        if stripped.startswith(FENCE_MARK):
            self._fenced = False
            return stripped[len(FENCE_MARK):]
        if FENCE_MARK.startswith(stripped):  # maybe the closing fence, not complete yet
            self._held = rest
            return None
        if not (stripped.startswith(OPEN) or OPEN.startswith(stripped)):
            self._fenced = False  # another call in the same fence keeps it open
        return self._outside(rest, out)

    def _block(self, body: str, original: str, out: List[Piece], read: bool = True) -> None:
        gap, self._gap = self._gap, ""
        calls = self._reader.read(body) if read else None
        if calls is None:
            self._emit(gap + original, out)
            return
        if FENCE_MARK in gap:
            if self._fences % 2:  # the fence closes a code block of the text: it is text
                self._emit(gap.rstrip(), out)
            else:
                self._fenced = True
        if not self._parallel:
            keep = 0 if self.calls else 1
            if len(calls) > keep:
                log.info("parallel_tool_calls is false: %d later call(s) dropped", len(calls) - keep)
            calls = calls[:keep]
        self.calls += len(calls)
        self._line_start = True  # a block ends its line
        out.extend(calls)


def _hold_from(text: str, line_start: bool) -> int:
    """Where the tail that may still precede or become an opening tag starts (len(text): nothing
    to hold). The tag has one "<", so only the last one can start it; whitespace before it is
    held with it, and so is whitespace at the very end and a code fence's opening line before
    that (they would sit between the text and a call)."""
    end = len(text)
    last = text.rfind("<")
    if last >= 0 and OPEN.startswith(text[last:]):
        end = last
    keep = len(text[:end].rstrip())
    probe = ("\n" if line_start else "") + text[:keep]
    fence = FENCE_OPENING.search(probe)
    return max(fence.start() - len(probe) + keep, 0) if fence else keep
