"""Reads a response's upstream reply into its ResponseBuilder, for streamed and whole answers alike.

``ResponseReader.run`` yields the stream events as bytes (ignored when not streaming) and IDLE on
each silent tick (the caller writes a keep-alive when one is due, or checks its deadline). Text goes
through helper A's ToolCallParser when tools are offered (calls become function_call items, the
rest message text), through the token budget, and, with a ``text.format``, is held until the reply
is whole and checked (structured_output.OutputFormat): a reply that does not fit gets one retry,
a new turn that shows the model its reply and why it was wrong (structured_reply.retry_request),
then structured_reply's clear 502. Every turn is finished (closed, recorded, hidden) once read.
"""
from __future__ import annotations

from typing import Any, Callable, FrozenSet, Iterator, List, Optional, Union

from ..errors import ApiError
from ..render.stream import finished_text, read_batches
from ..sse.events import ModelSlug, ReasoningDelta
from ..structured_output import FormatMismatch
from ..structured_reply import OpenTurn, Turn, invalid_output, retry_request
from ..tool_calls.parser import ToolCallParser
from ..tool_calls.toolset import ToolCall
from ..translate.chat_request import ChatRequest
from ..translate.conversation import sent_messages
from .builder import ResponseBuilder
from .tokens import TokenBudget, response_usage
from .tools import custom_input

IDLE = object()  # a silent tick of the upstream
RETRIES = 1      # a reply that does not fit text.format gets this many new turns


class ResponseReader:
    def __init__(self, builder: ResponseBuilder, chat_request: ChatRequest, max_output_tokens: Optional[int],
                 first: Turn, reopen: OpenTurn,
                 on_complete: Callable[[dict], None], custom_tools: FrozenSet[str] = frozenset()) -> None:
        """``reopen`` opens a further turn (the format retry); ``on_complete`` gets the finished
        Response before its last event goes out (the store: a client that reads the completed event
        and then GETs the response must find it); calls of ``custom_tools`` become custom_tool_call
        items (responses/tools.py)."""
        self.builder = builder
        self.custom_tools = custom_tools
        self.chat_request = chat_request
        self.turn = first
        self.reopen = reopen
        self.on_complete = on_complete
        self.budget = TokenBudget(max_output_tokens, first.context.encoding)
        tools = chat_request.tools
        self.parser = ToolCallParser(tools) if tools is not None and tools.choice != "none" else None
        self.format = chat_request.output_format
        self.held: List[str] = []  # text kept back for the format check
        self.calls = 0
        self.finished = False  # the current turn's finish() has run

    def run(self) -> Iterator[Union[bytes, Any]]:
        try:
            yield from self.builder.start()
            yield from self._answer()
            yield from self._finish()
        finally:
            self._finish_turn()  # a stream closed early (client gone) still closes its upstream reply

    def _answer(self) -> Iterator[Union[bytes, Any]]:
        request = self.chat_request
        for attempt in range(RETRIES + 1):
            whole = yield from self._read()
            if self.budget.exhausted or self.format is None or self.calls:
                return
            try:
                checked = self.format.check("".join(self.held))
            except FormatMismatch as mismatch:
                if attempt == RETRIES:
                    raise invalid_output(mismatch.reason, param="text.format", reply=whole) from None
                self.held = []
                request = retry_request(request, whole, mismatch.reason)
                self.turn, self.finished = self.reopen(request), False
                continue
            self.held = []
            yield from self._emit_text(checked)
            return

    def _read(self) -> Iterator[Union[bytes, Any]]:
        """The current turn's reply to its end; returns its whole text. Failures raise ApiError."""
        try:
            return (yield from self._read_turn(self.turn))
        finally:
            self._finish_turn()

    def _finish_turn(self) -> None:
        if not self.finished:
            self.finished = True
            self.turn.finish()

    def _read_turn(self, turn: Turn) -> Iterator[Union[bytes, Any]]:
        renderer, shown = turn.context.renderer, 0
        try:
            for batch in read_batches(turn.opened, turn.context, lambda: IDLE):
                if not isinstance(batch, list):
                    yield IDLE
                    continue
                out: List[bytes] = []  # the events of one upstream read go out in one write
                for event in batch:
                    if isinstance(event, ReasoningDelta):
                        text = renderer.reasoning(event)
                        if text:
                            out += self.builder.reasoning(text)
                    elif isinstance(event, ModelSlug):
                        turn.context.factory.answered_by(event.slug)
                        self.builder.set_model(turn.context.factory.model)
                    else:
                        text = renderer.render(event)
                        shown += len(text)
                        out.extend(self._text(text))
                    if renderer.state.failure is not None or self.budget.exhausted:
                        break
                yield b"".join(out)
                if renderer.state.failure is not None or self.budget.exhausted:
                    break
            if self.budget.exhausted:
                return renderer.state.text  # cut on purpose: the rest of the reply is not read
            whole = finished_text(turn.context)  # the end, checked: failures, a cut stream, an empty reply
        except ApiError:  # reading failed (a dropped connection) or the reply did (an error, a cut)
            renderer.finish()  # text the renderer still held (a citation) is part of what was said
            yield from self._salvage(renderer.state.text[shown:])
            raise
        yield from self._text(whole[shown:])
        yield from self._pieces(self.parser.finish() if self.parser else [])
        return whole

    def _salvage(self, rest: str) -> Iterator[bytes]:
        """A reply that failed midway: what it said so far goes into the (failed) response's output,
        held text included, unchecked (nothing the model said is silently dropped); a call block it
        left open is text too, never repaired into a call whose arguments may be cut short."""
        self.format = None
        pieces = (self.parser.feed(rest) + self.parser.finish(whole=False)) if self.parser else [rest]
        yield from self._release_held()
        yield from self._pieces([piece for piece in pieces if piece])

    def _text(self, text: str) -> Iterator[bytes]:
        if text:
            yield from self._pieces(self.parser.feed(text) if self.parser else [text])

    def _pieces(self, pieces: List[Union[str, ToolCall]]) -> Iterator[bytes]:
        for piece in pieces:
            if isinstance(piece, ToolCall):
                self.calls += 1
                self.budget.spend(piece.arguments)
                yield from self._release_held()
                if piece.name in self.custom_tools:
                    yield from self.builder.custom_tool_call(piece.id, piece.name, custom_input(piece.arguments))
                else:
                    yield from self.builder.function_call(piece.id, piece.name, piece.arguments)
            elif self.format is not None and not self.calls:
                self.held.append(piece)
            else:
                yield from self._emit_text(piece)

    def _release_held(self) -> Iterator[bytes]:
        """Text held for the format check before a call: the model chose to call, not to answer, so
        that text is the preamble of the call and goes out as it is."""
        held, self.held = "".join(self.held), []
        yield from self._emit_text(held)

    def _emit_text(self, text: str) -> Iterator[bytes]:
        text = self.budget.take(text)
        if text:
            yield from self.builder.text(text)

    def _finish(self) -> Iterator[bytes]:
        reason = "max_output_tokens" if self.budget.exhausted else None
        events = self.builder.close("incomplete" if reason else "completed")
        usage = response_usage(sent_messages(self.chat_request), self.builder.output, self.turn.context.encoding)
        events += self.builder.complete(usage, reason)
        self.on_complete(self.builder.response)
        yield from events

