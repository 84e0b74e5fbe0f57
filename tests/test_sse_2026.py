"""The 2026 reply stream's shapes through the interpreter (spec backend-api-2026.md 3.1-3.5): packed
data lines, typed events, thinking on the analysis channel and in thoughts patches, the model slug."""
from __future__ import annotations

import json
from typing import Any, Optional

import pytest

from backend_to_api.render.chunks import ChunkFactory
from backend_to_api.render.text import ReplyRenderer
from backend_to_api.settings import BotMode
from backend_to_api.sse import ReplyInterpreter, ServerSentEvent
from backend_to_api.sse.events import (
    ConversationId, Finish, HandOff, MessageFinished, ModelSlug, ReasoningDelta, TextDelta, ToolOutputDelta,
    UpstreamFailure,
)

CID = "c-2026"


def msg(mid: str, text: Any = "", role: str = "assistant", channel: Optional[str] = None,
        content: Optional[dict] = None, status: str = "in_progress", **metadata: Any) -> dict:
    return {"id": mid, "author": {"role": role, "name": None, "metadata": {}}, "recipient": "all",
            "channel": channel, "status": status, "end_turn": None, "metadata": metadata,
            "content": content or {"content_type": "text", "parts": [text]}}


def sse(payload: Any, event: Optional[str] = None) -> ServerSentEvent:
    return ServerSentEvent(event, payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False))


def run(*items: ServerSentEvent, v1: bool = True) -> list:
    interpreter = ReplyInterpreter()
    events = interpreter.feed(sse('"v1"', "delta_encoding")) if v1 else []
    for item in items:
        events += interpreter.feed(item)
    return events


def add(message: dict) -> ServerSentEvent:
    return sse({"p": "", "o": "add", "v": {"message": message, "conversation_id": CID}, "c": 0}, "delta")


def text_of(events: list, kind: type) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


# ---------------------------------------------------------------- several JSON values on one line

def test_several_delta_frames_on_one_data_line():
    events = run(add(msg("a")), sse('{"p": "/message/content/parts/0", "o": "append", "v": "He"}{"v": "ll"} {"v": "o"}',
                                    "delta"))
    assert text_of(events, TextDelta) == "Hello"


def test_several_cumulative_snapshots_on_one_line():
    line = "".join(json.dumps({"message": msg("a", text), "conversation_id": CID}) for text in ("Hi", "Hi there"))
    assert text_of(run(sse(line), v1=False), TextDelta) == "Hi there"


def test_typed_event_packed_with_a_delta_is_still_silent():
    title = json.dumps({"type": "title_generation", "title": "Secret title", "conversation_id": CID})
    events = run(add(msg("a", "x")), sse(title + '{"p": "/message/content/parts/0", "o": "append", "v": "y"}', "delta"))
    assert text_of(events, TextDelta) == "xy"
    assert "Secret title" not in repr(events)


@pytest.mark.parametrize("line", ['2024-05-01 12:00:00.123456', '{"v": "a"}{"v": ', '{"v": "a"} trailing', '"v1"'])
def test_lines_that_are_not_exactly_json_values_are_noise(line):
    assert run(add(msg("a", "x")), sse(line, "delta"))[-1] == TextDelta("x", "a")  # nothing after the text


def test_the_encoding_opener_packed_with_the_first_frame():
    line = '"v1"' + json.dumps({"p": "", "o": "add", "v": {"message": msg("a", "Hi"), "conversation_id": CID}})
    events = run(sse(line, "delta_encoding"), sse({"p": "/message/content/parts/0", "o": "append", "v": "!"}), v1=False)
    assert text_of(events, TextDelta) == "Hi!" and not [e for e in events if isinstance(e, UpstreamFailure)]


def test_bare_text_right_after_a_root_add_or_patch_is_more_text():
    events = run(add(msg("a", "He")), sse({"v": "llo"}, "delta"),
                 sse({"p": "", "o": "patch", "v": [{"p": "/message/status", "o": "replace", "v": "in_progress"}]},
                     "delta"),
                 sse({"v": " there"}, "delta"))
    assert text_of(events, TextDelta) == "Hello there"
    assert not [e for e in events if isinstance(e, UpstreamFailure)]


# ---------------------------------------------------------------- typed events

def test_typed_error_event_is_a_failure_whatever_field_holds_the_words():
    assert run(sse({"type": "error", "message": "Rate limited", "code": "rate_limit"})) == [
        UpstreamFailure("Rate limited", "rate_limit")]
    assert run(sse({"type": "error", "error": "typed"})) == [UpstreamFailure("typed")]


@pytest.mark.parametrize("payload", [
    {"type": "message_marker", "conversation_id": CID, "message_id": "a", "marker": "last_token", "event": "last"},
    {"type": "message_stream_complete", "conversation_id": CID},
    {"type": "title_generation", "title": "A title", "conversation_id": CID},
    {"type": "conversation_detail_metadata", "banner_info": None, "conversation_id": CID},
    {"type": "input_message", "input_message": msg("u", "the user's words", role="user"), "conversation_id": CID},
    {"type": "resume_conversation_token", "kind": "topic", "token": "tok", "conversation_id": CID},
    {"type": "moderation", "moderation_response": {"flagged": True, "blocked": False}, "conversation_id": CID},
    {"type": "title_generation", "error": "title failed"},  # a side feature's own error is not the reply's
    {"type": "something_new", "v": "not text"},
])
def test_side_channel_types_are_silent_in_both_encodings(payload):
    assert run(sse(payload)) == [] and run(sse(payload), v1=False) == []


@pytest.mark.parametrize("event, payload", [
    (None, {"type": "server_ste_metadata", "conversation_id": CID, "metadata": {"model_slug": "gpt-5-6-t-mini"}}),
    ("server_ste_metadata", {"type": "server_ste_metadata", "metadata": {"model_slug": "gpt-5-6-t-mini"}}),
    ("server_ste_metadata", {"conversation_id": CID, "metadata": {"model_slug": "gpt-5-6-t-mini"}}),
])
def test_server_ste_metadata_names_the_answering_model(event, payload):
    assert run(sse(payload, event)) == [ModelSlug("gpt-5-6-t-mini")]


def test_model_slug_reported_once_and_again_when_it_changes():
    ste = {"type": "server_ste_metadata", "metadata": {"model_slug": "gpt-5-2"}}
    events = run(add(msg("a", "x", model_slug="gpt-5-2")), sse({"v": "y"}, "delta"), sse(ste),
                 add(msg("b", "z", model_slug="gpt-5-2-thinking")))
    assert [e for e in events if isinstance(e, ModelSlug)] == [ModelSlug("gpt-5-2"), ModelSlug("gpt-5-2-thinking")]
    assert events.index(ModelSlug("gpt-5-2")) < events.index(TextDelta("x", "a"))  # before its text


def test_tool_messages_do_not_name_the_model():
    assert not [e for e in run(add(msg("t", "", role="tool", model_slug="gpt-4o"))) if isinstance(e, ModelSlug)]


def test_stream_handoff_is_a_typed_event_and_no_text():
    payload = {"type": "stream_handoff", "conversation_id": CID, "options": [
        {"type": "something_else", "topic_id": "x"}, {"type": "subscribe_ws_topic", "topic_id": "conversation-turn-7"}]}
    assert run(sse(payload)) == [HandOff("conversation-turn-7")]
    assert run(sse({"type": "stream_handoff", "options": "junk"})) == []


def test_blocking_moderation_is_a_content_policy_failure():
    payload = {"type": "moderation", "conversation_id": CID, "message_id": "a",
               "moderation_response": {"flagged": True, "blocked": True, "moderation_id": "modr-1"}}
    events = run(add(msg("a", "partial")), sse(payload))
    assert events[-1] == UpstreamFailure(events[-1].message, "content_policy_violation")
    assert "content policy" in events[-1].message


def test_error_frame_mid_v1_stream_is_a_failure():
    events = run(add(msg("a", "x")), sse({"message": None, "conversation_id": CID, "error": "Too many requests"}))
    assert events[-1] == UpstreamFailure("Too many requests")


# ---------------------------------------------------------------- thinking

def test_analysis_channel_is_reasoning_final_is_text_and_thinking_does_not_end_the_turn():
    closing = {"p": "", "o": "patch", "v": [
        {"p": "/message/status", "o": "replace", "v": "finished_successfully"},
        {"p": "/message/metadata", "o": "append", "v": {"finish_details": {"type": "stop"}}}]}
    events = run(add(msg("t", "Let me ", channel="analysis")), sse({"p": "/message/content/parts/0", "o": "append",
                                                                    "v": "think."}, "delta"),
                 sse(closing, "delta"), add(msg("f", "Answer", channel="final")),
                 sse({**closing, "v": closing["v"] + [{"p": "/message/end_turn", "o": "replace", "v": True}]}, "delta"))
    assert text_of(events, ReasoningDelta) == "Let me think."
    assert text_of(events, TextDelta) == "Answer"
    assert [e for e in events if isinstance(e, Finish)] == [Finish("stop")]
    assert events.index(Finish("stop")) > events.index(TextDelta("Answer", "f"))


def test_thoughts_grow_by_summary_and_content_paths_and_the_recap_is_dropped():
    thoughts = {"content_type": "thoughts", "thoughts": [], "source_analysis_msg_id": "s"}
    recap = {"content_type": "reasoning_recap", "content": "Thought for 8s"}
    events = run(
        add(msg("t", content=thoughts)),
        sse({"p": "/message/content/thoughts", "o": "append", "v": [{"summary": "", "content": "", "chunks": []}]},
            "delta"),
        sse({"p": "/message/content/thoughts/0/summary", "o": "append", "v": "Plan"}, "delta"),
        sse({"p": "/message/content/thoughts/0/content", "o": "append", "v": "First"}, "delta"),
        sse({"v": " idea"}, "delta"),
        sse({"p": "/message/content/thoughts/0/finished", "o": "add", "v": True}, "delta"),
        add(msg("r", content=recap, status="finished_successfully")),
    )
    assert [e.text for e in events if isinstance(e, ReasoningDelta)] == ["Plan", "\nFirst", " idea"]
    assert "Thought for" not in repr([e for e in events if not isinstance(e, MessageFinished)])
    assert not [e for e in events if isinstance(e, (TextDelta, Finish))]


def test_a_thought_known_only_by_its_chunks_is_reasoning():
    thoughts = {"content_type": "thoughts", "thoughts": [{"summary": "S", "content": "", "chunks": ["a", "b"]}]}
    assert text_of(run(add(msg("t", content=thoughts))), ReasoningDelta) == "S\nab"


def test_status_texts_of_the_tool_role_message_are_not_shown():
    status = msg("s", "", role="tool", initial_text="Thinking")
    events = run(add(status), sse({"p": "", "o": "patch", "v": [
        {"p": "/message/metadata", "o": "append", "v": {"finished_text": "Thought for 3s"}},
        {"p": "/message/status", "o": "replace", "v": "finished_successfully"}]}, "delta"))
    assert not [e for e in events if isinstance(e, (TextDelta, ReasoningDelta, ToolOutputDelta))]


def test_truncate_remove_and_replace_on_the_text_never_send_garbage():
    path = "/message/content/parts/0"
    events = run(add(msg("a", "Hello wrld")), sse({"p": path, "o": "truncate", "v": 7}, "delta"),
                 sse({"p": path, "o": "append", "v": "orld!"}, "delta"),
                 sse({"p": "/message/metadata/model_slug", "o": "remove"}, "delta"),
                 sse({"p": path, "o": "replace", "v": "Hello world! More."}, "delta"))
    # The client cannot take back "wrld": the rewrite re-baselines, and only text after it follows.
    assert text_of(events, TextDelta) == "Hello wrld More."


def test_a_finished_thinking_message_does_not_make_a_cut_reply_whole():
    renderer = ReplyRenderer(BotMode())
    for event in run(add(msg("t", "thinking", channel="analysis", status="finished_successfully"))):
        if not isinstance(event, ReasoningDelta):
            renderer.render(event)
    assert not renderer.state.finish_seen
    assert ConversationId(CID) in run(add(msg("t", "x")))


# ---------------------------------------------------------------- the model field

def test_chunk_model_follows_the_answering_model():
    factory = ChunkFactory("gpt-4.1", sent_slug="gpt-4-1")
    factory.answered_by("gpt-4-1")
    assert factory.model == "gpt-4.1"  # the slug we asked for: the client's own name
    factory.answered_by("gpt-4o-mini")
    assert json.loads(b"".join(factory.content("x"))[6:])["model"] == "gpt-4o-mini"
    assert json.loads(factory.role()[6:])["model"] == "gpt-4o-mini"
