"""The replies the emulator can give: one small generator of steps per scenario.

Scenarios know nothing of the encoding or the socket; they yield steps (steps.py) describing the
reply, and the stream runner turns them into bytes and time.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterator

from . import messages
from .directive import Directive, DirectiveError
from .messages import LiveMessage
from .steps import (DONE, PING, DataFrame, Drop, KeepAlive, MessageUpdate, Pause, RawFrame,
                    StreamComplete)
from .wire import to_json


@dataclass
class ReplyContext:
    directive: Directive
    conversation_id: str
    user_message: dict
    model_slug: str
    text_events: int = 0  # text events yielded so far: `interval` goes between them
    record: Any = None  # the stream's StreamRecord (set by backend._reply)
    state: Any = None  # the EmulatorState (set by backend._reply): stored conversations (pictures.py)
    last_message_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.last_message_id = self.user_message["id"]

    def prefixes(self, text: str) -> list[str]:
        """The cumulative texts of successive events, `chunk` more characters each."""
        size = self.directive.chunk
        return [text[:end] for end in range(size, len(text) + size, size)]

    def new_assistant(self, content: dict, recipient: str = "all") -> LiveMessage:
        message = messages.assistant_message(self.conversation_id, self.last_message_id,
                                             self.model_slug, content, recipient)
        self.last_message_id = message.id
        return message

    def new_python_output(self, code: str, output: str) -> LiveMessage:
        message = messages.python_output_message(self.conversation_id, self.last_message_id,
                                                 self.model_slug, code, output)
        self.last_message_id = message.id
        return message


Steps = Iterator[object]


# --- building blocks -------------------------------------------------------------------------

def preamble(ctx: ReplyContext) -> Steps:
    """The noise before the answer that a client must skip."""
    cid = ctx.conversation_id
    yield PING
    yield messages.timestamp_frame()
    yield messages.user_echo(cid, ctx.user_message)
    yield DataFrame(messages.moderation_event(cid, ctx.user_message["id"]))
    yield DataFrame(messages.title_event(cid))
    yield DataFrame(messages.detail_metadata_event(cid, ctx.model_slug))


def grow(ctx: ReplyContext, message: LiveMessage, prefixes: list[str]) -> Steps:
    set_text = message.text_run()  # nothing else changes the message until this loop ends
    for prefix in prefixes:
        if ctx.text_events and ctx.directive.interval > 0:
            yield Pause(ctx.directive.interval)
        ctx.text_events += 1
        yield set_text(prefix)


def answer(ctx: ReplyContext, text: str, end_turn: bool = True,
           created: Callable[[LiveMessage], None] = lambda message: None) -> Steps:
    """A whole assistant text message, from the empty first event to the finished one
    (``created`` is told the message before its first event goes out)."""
    message = ctx.new_assistant(messages.text_content())
    created(message)
    yield message.update()
    yield from grow(ctx, message, ctx.prefixes(text))
    yield message.finish(end_turn, ctx.directive.finish if end_turn else None)


def closing() -> Steps:
    yield StreamComplete()
    yield DONE


def interrupted(ctx: ReplyContext) -> Generator[object, None, LiveMessage]:
    """The start of an answer cut after `after_chunks` text events; returns its message."""
    yield from preamble(ctx)
    message = ctx.new_assistant(messages.text_content())
    yield message.update()
    yield from grow(ctx, message, ctx.prefixes(ctx.directive.text)[:ctx.directive.after_chunks])
    return message


# --- scenarios -------------------------------------------------------------------------------

def text(ctx: ReplyContext) -> Steps:
    yield from preamble(ctx)
    yield from answer(ctx, ctx.directive.text)
    yield from closing()


def tools(ctx: ReplyContext) -> Steps:
    """Text, code for the python tool, the tool's output, then a new text message."""
    d = ctx.directive
    yield from preamble(ctx)
    if d.text:
        yield from answer(ctx, d.text, end_turn=False)
    code = ctx.new_assistant(messages.code_content(), recipient="python")
    yield code.update()
    yield from grow(ctx, code, ctx.prefixes(d.code))
    # Upstream marks the code message finished with "stop" but no end of turn: a client must not
    # end the reply here.
    yield code.finish(end_turn=False, finish_type="stop")
    yield ctx.new_python_output(d.code, d.output).update()
    yield from answer(ctx, d.after)
    yield from closing()


def error_midstream(ctx: ReplyContext) -> Steps:
    yield from interrupted(ctx)
    yield DataFrame(messages.error_event(ctx.conversation_id, ctx.directive.error))
    yield DONE


def drop(ctx: ReplyContext) -> Steps:
    yield from interrupted(ctx)
    yield Drop()


def no_done(ctx: ReplyContext) -> Steps:
    yield from preamble(ctx)
    yield from answer(ctx, ctx.directive.text)


def empty(ctx: ReplyContext) -> Steps:
    yield from preamble(ctx)
    yield from closing()


_GARBAGE = (
    RawFrame(("data: this is not json",)),
    DataFrame([1, 2, 3]),
    DataFrame({"unexpected": {"shape": True}}),
    DataFrame("a bare JSON string"),
    RawFrame((": an SSE comment line",)),
    RawFrame(("event: surprise", 'data: {"x": 1}')),
    DataFrame({"type": "server_ste_metadata", "metadata": {"tool_invoked": False}}),
    DataFrame(None),
    DataFrame({"message": None, "conversation_id": None, "error": None}),
    RawFrame(("id: 7", "retry: 1000", "data: {not json either")),
)


def garbage(ctx: ReplyContext) -> Steps:
    """The text stream with a piece of junk before every text event."""
    junk = itertools.cycle(_GARBAGE)
    for step in text(ctx):
        if isinstance(step, MessageUpdate) and step.carries_text:
            yield next(junk)
        yield step


def rewrite(ctx: ReplyContext) -> Steps:
    """`after_chunks` events of `draft`, then the text restarts as `text` (not an extension)."""
    d = ctx.directive
    yield from preamble(ctx)
    message = ctx.new_assistant(messages.text_content())
    yield message.update()
    yield from grow(ctx, message, ctx.prefixes(d.draft)[:d.after_chunks])
    yield from grow(ctx, message, ctx.prefixes(d.text))
    yield message.finish(True, d.finish)
    yield from closing()


def inputs(ctx: ReplyContext) -> Steps:
    """Answers with what the user message carried: content type, non-text parts, attachments."""
    content = ctx.user_message["content"]
    seen = {"content_type": content["content_type"],
            "parts": [p if isinstance(p, dict) else "<text>" for p in content["parts"]],
            "attachments": (ctx.user_message.get("metadata") or {}).get("attachments", [])}
    yield from preamble(ctx)
    yield from answer(ctx, to_json(seen))
    yield from closing()


def hang(ctx: ReplyContext) -> Steps:
    """A stall of `hang` seconds with only pings after `after_chunks` events; then it finishes."""
    message = yield from interrupted(ctx)
    yield KeepAlive(ctx.directive.hang)
    yield from grow(ctx, message, ctx.prefixes(ctx.directive.text)[ctx.directive.after_chunks:])
    yield message.finish(True, ctx.directive.finish)
    yield from closing()


# A GPT action that needs the user's go-ahead: the proxy must answer "always allow" with this hash.
ACTION_RECIPIENT = "api_emu_example_com__jit_plugin.getWeather"
ACTION_OPERATION_HASH = "emu-operation-hash-1"
ACTION_ARGS = '{"city": "Paris"}'


def gpt_action(ctx: ReplyContext) -> Steps:
    """A GPT calls an action, which stops the turn to ask for confirmation; then `[DONE]`.
    The answer (a new turn with `jit_plugin_data.from_client`) plays `actions.action_result`."""
    yield from preamble(ctx)
    call = ctx.new_assistant(messages.code_content(), recipient=ACTION_RECIPIENT)
    yield call.update()
    yield from grow(ctx, call, ctx.prefixes(ACTION_ARGS))
    call.message["metadata"]["jit_plugin_data"] = {"from_server": {"type": "confirm_action", "body": {
        "domain": "emu.example.com", "is_consequential": True, "method": "get", "path": "/weather",
        "operation": "getWeather", "params": {"city": "Paris"},
        "actions": [{"type": "allow", "allow": {"target_message_id": call.id}},
                    {"type": "always_allow", "always_allow": {"target_message_id": call.id,
                                                              "operation_hash": ACTION_OPERATION_HASH}},
                    {"type": "deny", "deny": {"target_message_id": call.id}}]}}}
    yield call.finish(end_turn=True)
    yield from closing()


# o1's visible thinking: each thought's summary comes first, then its content grows.
THOUGHTS = ({"summary": "Reading the question", "content": "The user greets me; a greeting back fits."},
            {"summary": "Choosing words", "content": "Short and friendly, 你好 included."})


def thinking(ctx: ReplyContext) -> Steps:
    """An o1-style reply: a growing `thoughts` message, a `reasoning_recap`, then the answer `text`."""
    yield from preamble(ctx)
    message = ctx.new_assistant({"content_type": "thoughts", "thoughts": [], "source_analysis_msg_id": None})
    yield message.update()
    done: list[dict] = []
    for thought in THOUGHTS:
        for prefix in [""] + ctx.prefixes(thought["content"]):
            message.message["content"]["thoughts"] = done + [{**thought, "content": prefix, "chunks": [],
                                                             "finished": prefix == thought["content"]}]
            yield message.update(carries_text=True)
        done = message.message["content"]["thoughts"]
    yield message.finish(None)
    recap = ctx.new_assistant({"content_type": "reasoning_recap", "content": "Thought for 3 seconds"})
    yield recap.finish(None)
    yield from answer(ctx, ctx.directive.text)
    yield from closing()


def agent(ctx: ReplyContext) -> Steps:
    """The reply protocol_model.py composed for the tool / format protocol (its `text`), streamed
    like `text`, or with o1-style thoughts first (`think`)."""
    yield from (thinking if ctx.directive.think else text)(ctx)


STREAM_SCENARIOS: dict[str, Callable[[ReplyContext], Steps]] = {
    "text": text, "tools": tools, "error_midstream": error_midstream, "drop": drop,
    "no_done": no_done, "empty": empty, "garbage": garbage, "rewrite": rewrite, "hang": hang,
    "inputs": inputs,
    "thinking": thinking, "gpt_action": gpt_action, "agent": agent,
}
# Tool-output scenarios (browsing, dalle, python_image, sandbox) build on the blocks above, so
# their module is imported once those exist.
from .tool_scenarios import TOOL_SCENARIOS  # noqa: E402

STREAM_SCENARIOS.update(TOOL_SCENARIOS)
from .thinking_scenarios import THINKING_SCENARIOS  # noqa: E402

STREAM_SCENARIOS.update(THINKING_SCENARIOS)
from .pictures import PICTURE_SCENARIOS  # noqa: E402

STREAM_SCENARIOS.update(PICTURE_SCENARIOS)
from .handoff_scenarios import HANDOFF_SCENARIOS  # noqa: E402

STREAM_SCENARIOS.update(HANDOFF_SCENARIOS)
HTTP_ERROR = "http_error"


def stream_scenario(name: str) -> Callable[[ReplyContext], Steps]:
    try:
        return STREAM_SCENARIOS[name]
    except KeyError:
        known = sorted([*STREAM_SCENARIOS, HTTP_ERROR])
        raise DirectiveError(f"emulator directive: unknown scenario {name!r}; "
                             f"known: {', '.join(known)}") from None


def http_error(directive: Directive) -> tuple[int, bytes, dict[str, str]]:
    """Status, raw body and headers of an error answered before any stream."""
    body = directive.body
    if body is None:
        body = ({"detail": "Emulated upstream error"} if "json" in directive.content_type
                else "<html><body>Emulated upstream error</body></html>")
    raw = (body if isinstance(body, str) else to_json(body)).encode()
    headers = {"Content-Type": directive.content_type, **directive.headers}
    return directive.status, raw, headers

