"""Replies in the 2026 stream's shapes (spec backend-api-2026.md, 3.1-3.5): typed events around
the answer, thinking as a `thoughts` message grown by path or on the `analysis` channel, the
`reasoning_recap`, a tool-role status message, `data:` lines holding several JSON values, the
answering model named by `model_slug`. Registered in `scenarios.STREAM_SCENARIOS`.

Import it only through `scenarios` (which imports it last); tests read `thinking_content`."""
from __future__ import annotations

import uuid

from . import messages
from .messages import LiveMessage
from .scenarios import ReplyContext, Steps, grow
from .steps import DONE, DataFrame, Packed, Pause, RawFrame
from .thinking_content import ANALYSIS, AUTO_ROUTED, RECAP, STATUS_TEXTS, THOUGHTS_2026
from .wire import data_line

def thinking_2026(ctx: ReplyContext) -> Steps:
    """A gpt-5-thinking turn: status message, thoughts grown by path patches, their recap, then the
    answer on the `final` channel with some text events packed two to a line, typed events between."""
    cid, turn = ctx.conversation_id, uuid.uuid4().hex
    yield from _opening(ctx)
    status = _new_status(ctx, STATUS_TEXTS[0])
    yield status.update()
    thoughts = ctx.new_assistant({"content_type": "thoughts", "thoughts": [], "source_analysis_msg_id": status.id})
    thoughts.message["metadata"]["reasoning_status"] = "is_reasoning"
    yield thoughts.update()
    yield from _grow_thoughts(ctx, thoughts)
    yield thoughts.finish(None, "stop")  # thinking "stops" too; the turn goes on
    status.message["metadata"]["finished_text"] = STATUS_TEXTS[1]
    yield status.finish(None)
    recap = ctx.new_assistant({"content_type": "reasoning_recap", "content": RECAP})
    recap.message["metadata"].update(reasoning_status="reasoning_ended", finished_duration_sec=8)
    yield recap.finish(None)
    final = _new_on_channel(ctx, "final")
    yield DataFrame(messages.marker_event(cid, final.id, "user_visible_token", "first"))
    yield final.update()
    prefixes = ctx.prefixes(ctx.directive.text)
    half = len(prefixes) // 2
    yield from _grow_packed(ctx, final, prefixes[:half])
    yield DataFrame(messages.title_event(cid))
    yield from _grow_packed(ctx, final, prefixes[half:])
    yield final.finish(True, ctx.directive.finish)
    yield DataFrame(messages.marker_event(cid, final.id, "last_token", "last"))
    # this one under its own event name, as [A] also sees it (spec 3.3)
    yield RawFrame(("event: server_ste_metadata", data_line(messages.ste_metadata_event(cid, ctx.model_slug, turn))))
    yield from _closing(ctx)


def auto_channels(ctx: ReplyContext) -> Steps:
    """An `auto` turn the server routed to a thinking model: thinking as text on the `analysis`
    channel, the answer on `final`, every message's `model_slug` naming the model that answered."""
    if ctx.model_slug == "auto":
        ctx.model_slug = AUTO_ROUTED
    yield from _opening(ctx)
    analysis = _new_on_channel(ctx, "analysis")
    analysis.message["metadata"]["reasoning_status"] = "is_reasoning"
    yield analysis.update()
    yield from grow(ctx, analysis, ctx.prefixes(ANALYSIS))
    yield analysis.finish(None, "stop")
    final = _new_on_channel(ctx, "final")
    yield final.update()
    yield from grow(ctx, final, ctx.prefixes(ctx.directive.text))
    yield final.finish(True, ctx.directive.finish)
    yield DataFrame(messages.ste_metadata_event(ctx.conversation_id, ctx.model_slug, uuid.uuid4().hex))
    yield from _closing(ctx)


def moderation_block(ctx: ReplyContext) -> Steps:
    """`after_chunks` text events (0: none), then a moderation event that blocks the turn."""
    yield from _opening(ctx)
    blocked_id = ctx.user_message["id"]
    if ctx.directive.after_chunks:
        message = _new_on_channel(ctx, "final")
        yield message.update()
        yield from grow(ctx, message, ctx.prefixes(ctx.directive.text)[:ctx.directive.after_chunks])
        blocked_id = message.id
    yield DataFrame(messages.blocked_moderation_event(ctx.conversation_id, blocked_id))
    yield from _closing(ctx)


# --- blocks ------------------------------------------------------------------------------------

def _opening(ctx: ReplyContext) -> Steps:
    cid = ctx.conversation_id
    yield DataFrame(messages.input_message_event(cid, ctx.user_message))
    yield DataFrame(messages.resume_token_event(cid))
    yield DataFrame(messages.moderation_event(cid, ctx.user_message["id"]))  # flags nothing
    yield DataFrame(messages.detail_metadata_event(cid, ctx.model_slug))


def _closing(ctx: ReplyContext) -> Steps:
    # sent in both encodings here: the 2026 stream always ends so
    yield DataFrame(messages.stream_complete_event(ctx.conversation_id))
    yield DONE


def _new_on_channel(ctx: ReplyContext, channel: str) -> LiveMessage:
    message = ctx.new_assistant(messages.text_content())
    message.message["channel"] = channel
    return message


def _new_status(ctx: ReplyContext, initial_text: str) -> LiveMessage:
    message = messages.status_message(ctx.conversation_id, ctx.last_message_id, ctx.model_slug, initial_text)
    ctx.last_message_id = message.id
    return message


def _grow_thoughts(ctx: ReplyContext, message: LiveMessage) -> Steps:
    done: list[dict] = []
    for thought in THOUGHTS_2026:
        # an empty thought, its summary (v1: an append to .../summary), then its content piece by piece
        steps = [("", "")] + [(thought["summary"], prefix) for prefix in [""] + ctx.prefixes(thought["content"])]
        for summary, prefix in steps:
            current = {"summary": summary, "content": prefix, "chunks": [], "finished": False}
            message.message["content"]["thoughts"] = done + [current]
            if ctx.text_events and ctx.directive.interval > 0:
                yield Pause(ctx.directive.interval)
            ctx.text_events += 1
            yield message.update(carries_text=True)
        done = done + [{**current, "finished": True}]
    message.message["content"]["thoughts"] = done


def _grow_packed(ctx: ReplyContext, message: LiveMessage, prefixes: list[str]) -> Steps:
    """Text events two to a `data:` line."""
    set_text = message.text_run()
    for start in range(0, len(prefixes), 2):
        if ctx.text_events and ctx.directive.interval > 0:
            yield Pause(ctx.directive.interval)
        pair = prefixes[start:start + 2]
        ctx.text_events += len(pair)
        yield Packed(tuple(set_text(prefix) for prefix in pair))


THINKING_SCENARIOS = {"thinking_2026": thinking_2026, "auto_channels": auto_channels,
                      "moderation_block": moderation_block}
