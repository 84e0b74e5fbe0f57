"""Replies moved to the upstream's WebSocket (spec backend-api-2026.md 3.6; handoff.py serves it).

The HTTP stream of a 2026 hand-off carries only metadata, the `stream_handoff` topic and [DONE];
the reply itself (any other scenario's frames, in the directive's encoding) is the topic's items.
`wss_2024` and `wss_2024_register` answer the conversation POST with JSON instead (`wss_answer`).
Registered in `scenarios.STREAM_SCENARIOS` (imported by `scenarios` last)."""
from __future__ import annotations

import uuid

from flask import Response, jsonify

from . import messages
from .encodings import encoder_for
from .handoff import Plan
from .scenarios import ReplyContext, Steps, interrupted, text
from .steps import DONE, DataFrame, KeepAlive, Pause
from .thinking_scenarios import thinking_2026
from .wire import render_frame

WSS_ANSWERS = ("wss_2024", "wss_2024_register")


def handoff_event(conversation_id: str, topic: str) -> dict:
    return {"type": "stream_handoff", "conversation_id": conversation_id,
            "options": [{"type": "subscribe_ws_topic", "topic_id": topic}]}


def topic_items(ctx: ReplyContext, steps: Steps, prefix: str) -> list:
    """(stream_item_id, SSE text) for every data step of ``steps`` (silences dropped)."""
    encoder = encoder_for(ctx.directive.encoding, ctx.conversation_id)
    texts = [render_frame(frame, False) for frame in encoder.preamble()]
    for step in steps:
        if not isinstance(step, (Pause, KeepAlive)):
            texts.append(b"".join(render_frame(frame, False) for frame in encoder.encode(step)))
    return [(f"{prefix}-{n}", raw.decode()) for n, raw in enumerate(t for t in texts if t)]


def _handed_off(ctx: ReplyContext, plan: Plan | None, topic: str, turn: str) -> Steps:
    if plan is not None:
        ctx.state.handoff.plan_topic(topic, plan)
    cid = ctx.conversation_id
    yield DataFrame(messages.input_message_event(cid, ctx.user_message))
    yield DataFrame(messages.ste_metadata_event(cid, ctx.model_slug, turn))
    yield DataFrame(handoff_event(cid, topic))
    yield DataFrame(messages.stream_complete_event(cid))
    yield DONE


def handoff_thinking(ctx: ReplyContext) -> Steps:
    """A gpt-5-thinking turn (thinking_2026) whose every message arrives on the WebSocket."""
    turn = uuid.uuid4().hex
    topic = f"conversation-turn-{turn}"
    plan = Plan(topic_items(ctx, thinking_2026(ctx), topic), interval=ctx.directive.interval)
    yield from _handed_off(ctx, plan, topic, turn)


def handoff_catchup(ctx: ReplyContext) -> Steps:
    """A text answer: the first three items as catch-ups, live items from the second on (two
    duplicates), and the fifth sent twice."""
    turn = uuid.uuid4().hex
    topic = f"conversation-turn-{turn}"
    plan = Plan(topic_items(ctx, text(ctx), topic), catchups=3, live_from=1, repeat=(4,))
    yield from _handed_off(ctx, plan, topic, turn)


def handoff_silent(ctx: ReplyContext) -> Steps:
    """The start of an answer (`after_chunks` text events), then `hang` seconds of silence."""
    turn = uuid.uuid4().hex
    topic = f"conversation-turn-{turn}"
    items = topic_items(ctx, interrupted(ctx), topic)
    plan = Plan(items, silent_after=len(items), silence=ctx.directive.hang, end=None)
    yield from _handed_off(ctx, plan, topic, turn)


def handoff_pause(ctx: ReplyContext) -> Steps:
    """A text answer whose topic falls silent for `hang` seconds after `after_chunks` items, then
    sends the rest and the `done` marker (a long thinking pause on the socket)."""
    turn = uuid.uuid4().hex
    topic = f"conversation-turn-{turn}"
    plan = Plan(topic_items(ctx, text(ctx), topic), silent_after=ctx.directive.after_chunks,
                silence=ctx.directive.hang, resume=True)
    yield from _handed_off(ctx, plan, topic, turn)


def handoff_error(ctx: ReplyContext) -> Steps:
    """The start of an answer (`after_chunks` text events), then the topic's `error` end marker."""
    turn = uuid.uuid4().hex
    topic = f"conversation-turn-{turn}"
    ctx.state.handoff.plan_topic(topic, Plan(topic_items(ctx, interrupted(ctx), topic), end="error"))
    yield from _handed_off(ctx, None, topic, turn)


def handoff_derived(ctx: ReplyContext) -> Steps:
    """A text answer on the topic the turn id implies: the HTTP stream names no topic, only
    `server_ste_metadata` with `turn_exchange_id` (spec 3.3: [A] derives the topic from it)."""
    turn = uuid.uuid4().hex
    topic = f"conversation-turn-{turn}"
    ctx.state.handoff.plan_topic(topic, Plan(topic_items(ctx, text(ctx), topic)))
    cid = ctx.conversation_id
    yield DataFrame(messages.ste_metadata_event(cid, ctx.model_slug, turn))
    yield DataFrame(messages.stream_complete_event(cid))
    yield DONE


def wss_answer(ctx: ReplyContext, subject: str) -> Response:
    """2024: the POST answers JSON; the reply (the `text` scenario) comes as base64 frames on the
    socket it names (`wss_2024`) or that register-websocket names (`wss_2024_register`)."""
    response_id = uuid.uuid4().hex
    items = topic_items(ctx, text(ctx), "item")
    plan = Plan([(f"{ctx.conversation_id}:{response_id}", sse) for _, sse in items])
    server = ctx.state.handoff
    server.plan_response(response_id, subject, plan)
    answer = {"response_id": response_id, "conversation_id": ctx.conversation_id}
    if ctx.directive.emu == "wss_2024":
        answer["wss_url"] = server.url(f"/wss/{response_id}")
    return jsonify(answer)


HANDOFF_SCENARIOS = {"handoff_thinking": handoff_thinking, "handoff_catchup": handoff_catchup,
                     "handoff_silent": handoff_silent, "handoff_derived": handoff_derived, "handoff_error": handoff_error,
                     "handoff_pause": handoff_pause}
