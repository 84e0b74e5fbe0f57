"""ReplyInterpreter (and the v1 DeltaDocument): upstream events -> typed events, both encodings."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend_to_api.sse import ReplyInterpreter, ServerSentEvent, SSEDecoder, SSEFormatError
from backend_to_api.sse.events import (
    CodeDelta,
    ConversationId,
    Finish,
    ImagePointer,
    MessageFinished,
    ModelSlug,
    StreamEnd,
    TextDelta,
    ToolOutputDelta,
    UpstreamFailure,
)
from backend_to_api.sse.patch import DeltaDocument, PatchError

CID = "6f1d2c3b-0000-4000-8000-00000000c1d0"


# ---------------------------------------------------------------- building upstream streams


@dataclass
class Spec:
    """One upstream message of a turn, and how upstream chops its text into events."""

    id: str
    pieces: list[str]
    role: str = "assistant"
    content_type: str = "text"
    recipient: str = "all"
    name: Optional[str] = None
    finish: Optional[str] = "stop"
    end_turn: Optional[bool] = True
    extra_parts: list[Any] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def message(spec: Spec, text: str, status: str = "in_progress", final: bool = False) -> dict:
    if spec.content_type in ("text", "multimodal_text"):
        content = {"content_type": spec.content_type, "parts": [*spec.extra_parts, text]}
    else:
        content = {"content_type": spec.content_type, "language": "unknown", "text": text}
    metadata: dict[str, Any] = {"citations": [], "message_type": "next", "model_slug": "gpt-4o"}
    if final and spec.finish:
        metadata["finish_details"] = {"type": spec.finish, "stop_tokens": [200002]}
    return {
        "id": spec.id,
        "author": {"role": spec.role, "name": spec.name, "metadata": {}},
        "create_time": 1714550400.5,
        "content": content,
        "status": status,
        "end_turn": spec.end_turn if final else None,
        "weight": 1.0,
        "metadata": metadata,
        "recipient": spec.recipient,
        "channel": None,
    }


def envelope(msg: Optional[dict]) -> dict:
    return {"message": msg, "conversation_id": CID, "error": None}


def frame(data: Any, event: Optional[str] = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


USER_ECHO = Spec("u-1", ["讲个笑话 please"], role="user", finish=None, end_turn=None)
SYSTEM_ECHO = Spec("s-1", ["You are ChatGPT."], role="system", finish=None, end_turn=None)
NOISE = [
    frame("2024-05-01 08:00:00.123456", "ping"),
    frame("2024-05-01 08:00:00.123456"),
    frame({"type": "moderation", "moderation_response": {"flagged": False}, "conversation_id": CID}),
    frame({"type": "title_generation", "title": "程序员笑话", "conversation_id": CID}),
    frame({"type": "conversation_detail_metadata", "banner_info": None, "conversation_id": CID}),
    frame({"type": "message_stream_complete", "conversation_id": CID}),
    frame({"type": "server_ste_metadata", "metadata": {"turn_exchanges": 1}, "error": "not ours"}),
    frame({"message": None, "error": None}),
    frame([1, 2, 3]),
    frame('"just a string"'),
    frame("42"),
    frame("{}"),
    frame("{not json"),
]


def cumulative_stream(specs: list[Spec]) -> bytes:
    out = [frame(envelope(message(SYSTEM_ECHO, SYSTEM_ECHO.text, "finished_successfully")))]
    out += [frame(envelope(message(USER_ECHO, USER_ECHO.text, "finished_successfully")))]
    out += NOISE[:3]
    for spec in specs:
        text = ""
        for piece in spec.pieces:
            text += piece
            out.append(frame(envelope(message(spec, text))))
        out.append(frame(envelope(message(spec, text, "finished_successfully", final=True))))
    return b"".join(out + NOISE[3:] + [frame("[DONE]")])


def v1_stream(specs: list[Spec]) -> bytes:
    out = [frame('"v1"', "delta_encoding")]
    out.append(frame({"p": "", "o": "add", "v": envelope(message(USER_ECHO, USER_ECHO.text)), "c": 0}, "delta"))
    out += NOISE[:3]
    for number, spec in enumerate(specs, start=1):
        start = envelope(message(spec, ""))
        # Upstream starts a message either with an explicit root add or with a bare {"v": {...}}.
        opening = {"p": "", "o": "add", "v": start, "c": number} if number % 2 else {"v": start, "c": number}
        out.append(frame(opening, "delta"))
        path = "/message/content/parts/%d" % len(spec.extra_parts) if spec.content_type in ("text", "multimodal_text") else "/message/content/text"
        for index, piece in enumerate(spec.pieces):
            out.append(frame({"p": path, "o": "append", "v": piece} if index == 0 else {"v": piece}, "delta"))
        out.append(frame({"p": "", "o": "patch", "v": closing_ops(spec)}, "delta"))
    return b"".join(out + NOISE[3:] + [frame("[DONE]")])


def closing_ops(spec: Spec) -> list[dict]:
    final = message(spec, "", final=True)
    return [
        {"p": "/message/status", "o": "replace", "v": "finished_successfully"},
        {"p": "/message/end_turn", "o": "replace", "v": final["end_turn"]},
        {"p": "/message/metadata", "o": "append", "v": {"is_complete": True, **final["metadata"]}},
    ]


def run(raw: bytes, chunk: int = 0) -> list:
    decoder, interpreter = SSEDecoder(), ReplyInterpreter()
    pieces = [raw[i : i + chunk] for i in range(0, len(raw), chunk)] if chunk else [raw]
    events = []
    for piece in pieces:
        for sse in decoder.feed(piece):
            events += interpreter.feed(sse)
    for sse in decoder.finish():
        events += interpreter.feed(sse)
    return events


def feed_all(*sses: ServerSentEvent) -> list:
    interpreter = ReplyInterpreter()
    return [event for sse in sses for event in interpreter.feed(sse)]


def data(payload: Any, event: Optional[str] = None) -> ServerSentEvent:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return ServerSentEvent(event=event, data=text)


def joined(events: list, kind: type) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


def by_message(events: list, kind: type) -> dict[str, str]:
    texts: dict[str, str] = {}
    for e in events:
        if isinstance(e, kind):
            texts[e.message_id] = texts.get(e.message_id, "") + e.text
    return texts


# ---------------------------------------------------------------- one plain reply, both encodings

JOKE = Spec("a-1", ["为什么", "程序员总是", "分不清万圣节和圣诞节？🎃", "\n因为 Oct 31 == Dec 25。", " data: [DONE]"])


def test_cumulative_reply_reproduces_the_text_exactly():
    events = run(cumulative_stream([JOKE]))
    assert joined(events, TextDelta) == JOKE.text
    assert [type(e) for e in events if not isinstance(e, TextDelta)] == [
        ConversationId, ModelSlug, MessageFinished, Finish, StreamEnd
    ]
    assert events[0] == ConversationId(CID)
    assert Finish("stop") in events and MessageFinished("a-1", "assistant") in events


def test_v1_reply_gives_the_same_events_as_cumulative():
    cumulative, v1 = run(cumulative_stream([JOKE])), run(v1_stream([JOKE]))
    assert joined(v1, TextDelta) == JOKE.text
    assert v1 == cumulative  # same events in the same order (message snapshots are not compared)


@pytest.mark.parametrize("chunk", [1, 97, 100000])
def test_network_chunking_does_not_change_the_events(chunk):
    for raw in (cumulative_stream([JOKE]), v1_stream([JOKE])):
        assert run(raw, chunk) == run(raw)


HANDWRITTEN_V1 = """\
event: delta_encoding
data: "v1"

event: delta
data: {"p": "", "o": "add", "v": {"message": {"id": "u-9", "author": {"role": "user"}, "content": {"content_type": "text", "parts": ["hi"]}, "status": "finished_successfully", "recipient": "all"}, "conversation_id": "conv-9", "error": null}, "c": 0}

event: delta
data: {"v": {"message": {"id": "a-9", "author": {"role": "assistant", "name": null}, "content": {"content_type": "text", "parts": [""]}, "status": "in_progress", "end_turn": null, "metadata": {"citations": []}, "recipient": "all"}, "conversation_id": "conv-9", "error": null}, "c": 1}

event: delta
data: {"p": "/message/content/parts/0", "o": "append", "v": "Hel"}

event: delta
data: {"v": "lo"}

data: {"v": ", wor"}

event: delta
data: {"p": "", "o": "patch", "v": [{"p": "/message/content/parts/0", "o": "append", "v": "ld!"}, {"p": "/message/status", "o": "replace", "v": "finished_successfully"}, {"p": "/message/end_turn", "o": "replace", "v": true}, {"p": "/message/metadata", "o": "append", "v": {"is_complete": true, "finish_details": {"type": "stop", "stop_tokens": [200002]}}}]}

data: {"type": "message_stream_complete", "conversation_id": "conv-9"}

data: [DONE]

"""


def test_handwritten_v1_stream():
    events = run(HANDWRITTEN_V1.encode())
    assert events == [
        ConversationId("conv-9"),
        TextDelta("Hel", "a-9"),
        TextDelta("lo", "a-9"),
        TextDelta(", wor", "a-9"),
        TextDelta("ld!", "a-9"),
        MessageFinished("a-9", "assistant"),
        Finish("stop"),
        StreamEnd(),
    ]
    assert events[-3].message["content"]["parts"] == ["Hello, world!"]


# ---------------------------------------------------------------- a turn with a tool call

TOOL_TURN = [
    Spec("a-1", ["Let me ", "compute that 🧮."], end_turn=False),
    Spec("a-2", ["print(", "6 * 7", ")\n"], content_type="code", recipient="python", end_turn=False),
    Spec("t-1", ["42", "\n"], role="tool", name="python", content_type="execution_output", finish=None,
         end_turn=None),
    Spec("a-3", ["The answer", " is **42**", "。"]),
]


@pytest.mark.parametrize("encode", [cumulative_stream, v1_stream], ids=["cumulative", "v1"])
def test_tool_turn_every_character_once_in_the_right_event(encode):
    events = run(encode(TOOL_TURN))
    assert by_message(events, TextDelta) == {"a-1": TOOL_TURN[0].text, "a-3": TOOL_TURN[3].text}
    assert by_message(events, CodeDelta) == {"a-2": "print(6 * 7)\n"}
    assert by_message(events, ToolOutputDelta) == {"t-1": "42\n"}
    assert {e.recipient for e in events if isinstance(e, CodeDelta)} == {"python"}
    assert {(e.tool, e.content_type) for e in events if isinstance(e, ToolOutputDelta)} == {
        ("python", "execution_output")
    }
    finished = [(e.message_id, e.role) for e in events if isinstance(e, MessageFinished)]
    assert finished == [("a-1", "assistant"), ("a-2", "assistant"), ("t-1", "tool"), ("a-3", "assistant")]
    # Only the message that ends the turn reports a finish reason.
    assert [e for e in events if isinstance(e, Finish)] == [Finish("stop")]
    assert events[-1] == StreamEnd()


def test_first_characters_after_a_tool_message_are_kept():
    # The original kept one text baseline for all messages and lost the start of the next message.
    first = Spec("a-1", ["A long first answer, longer than the second."], end_turn=False)
    second = Spec("a-2", ["Short."])
    for encode in (cumulative_stream, v1_stream):
        assert by_message(run(encode([first, second])), TextDelta) == {"a-1": first.text, "a-2": "Short."}


def test_delta_events_carry_the_latest_message_snapshot():
    events = run(v1_stream([JOKE]))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    seen = ""
    for delta in deltas:
        seen += delta.text
        # Each snapshot is the document as it was then: later frames never mutate it.
        assert delta.message["content"]["parts"] == [seen]
        assert delta.message["id"] == "a-1"


def test_multimodal_text_joins_string_parts_and_skips_images():
    image = {"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-1"}
    spec = Spec("a-1", ["看这张图", "片"], content_type="multimodal_text", extra_parts=[image])
    for encode in (cumulative_stream, v1_stream):
        assert joined(run(encode([spec])), TextDelta) == "看这张图片"


def test_dalle_tool_output_yields_one_image_pointer_and_no_text():
    image = {"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-9"}
    msg = message(Spec("t-1", [], role="tool", name="dalle.text2im", content_type="multimodal_text"), "")
    msg["content"]["parts"] = [image]
    frame = data(envelope({**msg, "status": "finished_successfully"}))
    events = feed_all(frame, frame)  # the same tool message twice: still one pointer
    assert [type(e) for e in events] == [ConversationId, ImagePointer, MessageFinished]
    assert events[1] == ImagePointer("file-9", "t-1")


def test_python_image_output_yields_an_image_pointer():
    msg = message(Spec("t-2", [], role="tool", name="python", content_type="execution_output"), "")
    msg["content"] = {"content_type": "execution_output", "text": "<<ImageDisplayed>>"}
    msg["metadata"]["aggregate_result"] = {"messages": [
        {"message_type": "stream", "text": "x"}, {"message_type": "image", "image_url": "file-service://file-p"}]}
    events = feed_all(data(envelope(msg)))
    assert ImagePointer("file-p", "t-2") in events


# ---------------------------------------------------------------- single events, rewrites, finish


def test_message_delivered_only_as_a_finished_event_yields_its_full_text():
    spec = Spec("a-1", ["Complete answer in one go ✅"], finish="stop")
    events = feed_all(data(envelope(message(spec, spec.text, "finished_successfully", final=True))))
    assert events == [
        ConversationId(CID),
        ModelSlug("gpt-4o"),
        TextDelta(spec.text, "a-1"),
        MessageFinished("a-1", "assistant"),
        Finish("stop"),
    ]


def snapshots(*texts: str) -> list:
    spec = Spec("a-1", [])
    return feed_all(*(data(envelope(message(spec, text))) for text in texts))


def test_rewritten_text_produces_no_garbage():
    events = snapshots("Hello wor", "Hello world", "Hi there, world!", "Hi there, world! Bye")
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello wor", "ld", " Bye"]


def test_shrunk_then_regrown_text_is_not_sent_twice():
    events = snapshots("Hello", "Hel", "Hello", "Hello there")
    assert joined(events, TextDelta) == "Hello there"


def test_repeated_snapshots_add_nothing():
    assert joined(snapshots("abc", "abc", "abc", "abcd"), TextDelta) == "abcd"


@pytest.mark.parametrize("kind, reason", [("max_tokens", "length"), ("stop", "stop"), ("interrupted", "stop")])
def test_finish_details_map_to_a_finish_reason_once(kind, reason):
    spec = Spec("a-1", [], finish=kind)
    final = envelope(message(spec, "truncated answer", "finished_successfully", final=True))
    events = feed_all(data(envelope(message(spec, "trunc"))), data(final), data(final))
    assert [e for e in events if isinstance(e, Finish)] == [Finish(reason)]
    assert joined(events, TextDelta) == "truncated answer"


def test_max_tokens_with_end_turn_false_is_still_length():
    # The real upstream marks a reply cut at the token limit end_turn: false ("Continue generating").
    spec = Spec("a-1", [], finish="max_tokens", end_turn=False)
    events = feed_all(data(envelope(message(spec, "cut", "finished_successfully", final=True))))
    assert [e for e in events if isinstance(e, Finish)] == [Finish("length")]


def test_stop_with_end_turn_false_hands_over_to_a_tool():
    spec = Spec("a-1", [], finish="stop", end_turn=False)
    events = feed_all(data(envelope(message(spec, "calling a tool", "finished_successfully", final=True))))
    assert not any(isinstance(e, Finish) for e in events)


def test_unknown_finish_type_is_ignored():
    spec = Spec("a-1", [], finish="something_new")
    assert not any(isinstance(e, Finish) for e in feed_all(data(envelope(message(spec, "x", final=True)))))


# ---------------------------------------------------------------- errors, noise, echo, end


def test_error_string_is_an_upstream_failure():
    events = feed_all(data({"message": None, "conversation_id": CID, "error": "Something went wrong."}))
    assert events == [UpstreamFailure("Something went wrong."), ConversationId(CID)]


def test_error_object_and_detail_objects():
    rate_limit = {"detail": {"message": "You've reached our limit of messages.", "code": "model_cap_exceeded",
                             "clears_in": 11461}}
    assert feed_all(data(rate_limit)) == [
        UpstreamFailure("You've reached our limit of messages.", "model_cap_exceeded")
    ]
    assert feed_all(data({"detail": "Unauthorized"})) == [UpstreamFailure("Unauthorized")]
    assert feed_all(data({"error": {"message": "boom", "code": 500}})) == [UpstreamFailure("boom", "500")]
    assert feed_all(data({"type": "error", "error": "typed"})) == [UpstreamFailure("typed")]


@pytest.mark.parametrize("value", [None, "", "   ", False, 0, {}, []])
def test_empty_error_values_are_not_failures(value):
    assert feed_all(data({"message": None, "error": value})) == []


def test_error_kept_in_the_v1_document_is_reported_once():
    events = run(
        frame('"v1"', "delta_encoding")
        + frame({"p": "", "o": "add", "v": {"message": None, "error": "server overloaded"}}, "delta")
        + frame({"p": "/x", "o": "add", "v": 1}, "delta")
        + frame({"p": "/y", "o": "add", "v": 2}, "delta")
    )
    assert events == [UpstreamFailure("server overloaded")]


@pytest.mark.parametrize("raw", NOISE)
def test_noise_frames_produce_no_events(raw):
    assert run(raw) == []
    assert run(frame('"v1"', "delta_encoding") + raw) == []


def test_null_message_still_tells_the_conversation_id():
    assert feed_all(data(envelope(None)), data(envelope(None))) == [ConversationId(CID)]


def test_done_is_the_stream_end():
    assert feed_all(data("[DONE]")) == [StreamEnd()]
    assert run(b"data: [DONE]") == [StreamEnd()]  # even without the final blank line


def test_user_and_system_echo_is_skipped():
    events = feed_all(
        data(envelope(message(SYSTEM_ECHO, SYSTEM_ECHO.text, "finished_successfully"))),
        data(envelope(message(USER_ECHO, USER_ECHO.text, "finished_successfully"))),
    )
    assert events == [ConversationId(CID)]


def test_conversation_id_is_reported_once():
    events = run(cumulative_stream(TOOL_TURN))
    assert [e for e in events if isinstance(e, ConversationId)] == [ConversationId(CID)]


def test_odd_but_valid_shapes_are_noise():
    odd = [
        {"message": {"author": "assistant", "content": "text"}},
        {"message": {"author": {"role": "assistant"}, "content": {"parts": "not a list"}}},
        {"message": {"author": {"role": ["assistant"]}, "content": {"content_type": "text", "parts": ["x"]}}},
        {"message": {"id": ["unhashable"], "author": {"role": "assistant"}, "recipient": {"a": 1},
                     "content": {"content_type": ["text"], "parts": ["x"]}, "status": 7,
                     "metadata": {"finish_details": {"type": ["stop"]}}}},
        {"message": [], "conversation_id": 12},
    ]
    events = feed_all(*(data(item) for item in odd))
    assert all(not isinstance(e, (TextDelta, ConversationId, Finish, MessageFinished)) for e in events)


def test_unknown_delta_encoding_is_a_failure():
    events = feed_all(data('"v2"', "delta_encoding"))
    assert [e.code for e in events] == ["unsupported_encoding"]


# ---------------------------------------------------------------- the v1 document itself


def apply_all(*frames: Any, document: Any = None) -> Any:
    doc = DeltaDocument(document)
    for item in frames:
        doc.apply(item)
    return doc.document


def test_patch_operations():
    doc = apply_all(
        {"p": "", "o": "add", "v": {"message": {"content": {"parts": ["ab"]}, "metadata": {"a": 1}}}},
        {"p": "/message/content/parts/0", "o": "append", "v": "cd"},
        {"v": "ef"},
        {"p": "/message/content/parts/0", "o": "truncate", "v": 3},
        {"p": "/message/metadata", "o": "append", "v": {"b": 2}},
        {"p": "/message/list", "o": "add", "v": [1]},
        {"p": "/message/list", "o": "append", "v": [2, 3]},
        {"o": "append", "v": 4},
        {"p": "/message/list/0", "o": "remove"},
        {"p": "/message/list/-", "o": "add", "v": 5},
        {"p": "/message/list/0", "o": "add", "v": 0},
        {"p": "/message/list", "o": "truncate", "v": 4},
        {"p": "/message/a~1b", "o": "add", "v": "slash"},
        {"p": "/message/gone", "o": "remove"},
        {"p": "", "o": "patch", "v": [{"p": "/message/status", "o": "replace", "v": "finished_successfully"},
                                      {"p": "/message/content/parts/0", "o": "append", "v": "!"}, {"v": "?"}]},
    )
    assert doc == {
        "message": {
            "content": {"parts": ["abc!?"]},
            "metadata": {"a": 1, "b": 2},
            "list": [0, 2, 3, 4],
            "a/b": "slash",
            "status": "finished_successfully",
        }
    }


def test_root_add_replaces_the_document_and_bare_message_value_starts_a_new_one():
    doc = apply_all(
        {"p": "", "o": "add", "v": {"message": {"id": "1", "content": {"parts": [""]}}}},
        {"p": "/message/content/parts/0", "o": "append", "v": "x"},
        {"v": {"message": {"id": "2", "content": {"parts": [""]}}}, "c": 2},
    )
    assert doc == {"message": {"id": "2", "content": {"parts": [""]}}}


def test_patch_paths_are_relative_to_the_patch_path():
    doc = apply_all({"p": "/message", "o": "patch", "v": [{"p": "/status", "o": "replace", "v": "done"}]},
                    document={"message": {"status": "in_progress"}})
    assert doc == {"message": {"status": "done"}}


def test_updates_never_mutate_an_earlier_snapshot():
    doc = DeltaDocument({"message": {"content": {"parts": ["a"]}, "metadata": {"x": [1]}}})
    before = doc.document
    doc.apply({"p": "/message/content/parts/0", "o": "append", "v": "b"})
    doc.apply({"p": "/message/metadata/x", "o": "append", "v": 2})
    doc.apply({"p": "/message/metadata", "o": "append", "v": {"y": 1}})
    assert before == {"message": {"content": {"parts": ["a"]}, "metadata": {"x": [1]}}}
    assert doc.document == {"message": {"content": {"parts": ["ab"]}, "metadata": {"x": [1, 2], "y": 1}}}


@pytest.mark.parametrize(
    "bad",
    [
        {"v": "no previous op"},
        {"p": "/message/missing/deeper", "o": "append", "v": "x"},
        {"p": "/message/content/parts/5", "o": "replace", "v": "x"},
        {"p": "/message/content/parts/x", "o": "replace", "v": "x"},
        {"p": "/message/content/parts/-1", "o": "replace", "v": "x"},
        {"p": "/message/content/parts/99999999999999999999", "o": "replace", "v": "x"},
        {"p": "/message/status/0", "o": "replace", "v": "x"},
        {"p": "/message/status", "o": "append", "v": 5},
        {"p": "/message/status", "o": "append", "v": {"a": 1}},
        {"p": "/message/status", "o": "truncate", "v": "3"},
        {"p": "/message/status", "o": "truncate", "v": -1},
        {"p": "/message/status", "o": "truncate", "v": True},
        {"p": "/message/nothing", "o": "truncate", "v": 1},
        {"p": "/message/content/parts/3", "o": "remove"},
        {"p": "/message/status", "o": "explode", "v": 1},
        {"p": "/message/status", "o": "replace"},
        {"p": 5, "o": "replace", "v": 1},
        {"p": "", "o": "patch", "v": "not a list"},
        {"p": "", "o": "patch", "v": [{"p": "/message/status", "o": "replace", "v": "ok"}, "junk"]},
        {"p": "", "o": ["add"], "v": 1},
        "not an object",
    ],
)
def test_bad_operations_raise_patch_error_and_leave_the_document_alone(bad):
    original = {"message": {"status": "in_progress", "content": {"parts": ["hi"]}}}
    doc = DeltaDocument(original)
    with pytest.raises(PatchError):
        doc.apply(bad)
    assert doc.document is original and original["message"]["status"] == "in_progress"


def test_deeply_nested_patches_are_refused():
    nested: Any = {"p": "/a", "o": "replace", "v": 1}
    for _ in range(50):
        nested = {"p": "", "o": "patch", "v": [nested]}
    with pytest.raises(PatchError):
        DeltaDocument({"a": 0}).apply(nested)


def test_bad_delta_frame_becomes_an_upstream_failure_and_the_stream_goes_on():
    spec = Spec("a-1", [])
    events = run(
        frame('"v1"', "delta_encoding")
        + frame({"p": "", "o": "add", "v": envelope(message(spec, "Hi"))}, "delta")
        + frame({"p": "/message/content/parts/0", "o": "append", "v": 42}, "delta")
        + frame({"p": "/message/content/parts/0", "o": "append", "v": " there"}, "delta")
    )
    failures = [e for e in events if isinstance(e, UpstreamFailure)]
    assert len(failures) == 1 and failures[0].code == "bad_delta"
    assert joined(events, TextDelta) == "Hi there"


# ---------------------------------------------------------------- properties

pieces_of_text = st.lists(st.text(max_size=40), max_size=12)


@settings(max_examples=150, deadline=None)
@given(pieces=pieces_of_text, chunk=st.integers(min_value=1, max_value=200))
def test_any_text_any_chunking_both_encodings_reproduce_it(pieces, chunk):
    spec = Spec("a-1", pieces)
    for encode in (cumulative_stream, v1_stream):
        events = run(encode([spec]), chunk)
        assert joined(events, TextDelta) == spec.text
        assert events[-1] == StreamEnd()


@settings(max_examples=100, deadline=None)
@given(turn=st.lists(pieces_of_text, min_size=1, max_size=4), chunk=st.integers(min_value=1, max_value=300))
def test_any_multi_message_turn_keeps_every_message_whole(turn, chunk):
    specs = [Spec(f"a-{i}", pieces, end_turn=i == len(turn) - 1) for i, pieces in enumerate(turn)]
    expected = {spec.id: spec.text for spec in specs if spec.text}
    for encode in (cumulative_stream, v1_stream):
        assert by_message(run(encode(specs), chunk), TextDelta) == expected


INTERESTING_LINES = [
    b"", b"data: [DONE]", b"event: delta", b"event: delta_encoding", b'data: "v1"', b"event: ping",
    b'data: {"p": "", "o": "add", "v": {"message": {"id": "m", "author": {"role": "assistant"}}}}',
    b'data: {"p": "/message/content/parts/0", "o": "append", "v": "x"}', b'data: {"v": "y"}',
    b'data: {"message": {"id": "m", "author": {"role": "tool"}, "content": {"text": 1}}}',
    b'data: {"error": {"detail": {"message": [1]}}}', b"data: " + b"[" * 5000, b": comment", b"retry: 9",
]
lines = st.one_of(st.sampled_from(INTERESTING_LINES), st.binary(max_size=30), st.text(max_size=30).map(str.encode))


@settings(max_examples=300, deadline=None)
@given(body=st.lists(lines, max_size=30), sep=st.sampled_from([b"\n", b"\r\n", b"\r"]),
       chunk=st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_never_raise_anything_but_sse_format_errors(body, sep, chunk):
    try:
        run(sep.join(body), chunk)
    except SSEFormatError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
    | st.sampled_from(["", "/message", "/message/content/parts/0", "-", "add", "append", "patch", "truncate",
                       "remove", "replace", "assistant", "tool", "text", "code", "finished_successfully", "all"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["p", "o", "v", "message", "author", "role", "content", "parts", "text",
                                       "content_type", "status", "id", "error", "detail", "type", "metadata",
                                       "finish_details", "recipient", "conversation_id"]), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(st.tuples(st.sampled_from([None, "delta"]), json_values), max_size=12),
       v1=st.booleans())
def test_arbitrary_json_frames_never_raise(frames, v1):
    interpreter = ReplyInterpreter()
    if v1:
        interpreter.feed(data('"v1"', "delta_encoding"))
    for event, value in frames:
        for item in interpreter.feed(data(value, event)):
            assert not isinstance(item, ServerSentEvent)


def test_invalid_utf8_in_an_event_reads_as_replacement_characters():
    """orjson refuses invalid UTF-8 in the bytes it parses; the event must still be read, with
    U+FFFD where the bytes were bad, as decoding the stream first did."""
    spec = Spec("a-bad", ["ok "])
    good = frame(envelope(message(spec, "ok ")))
    final = frame(envelope(message(spec, "ok XY!", "finished_successfully", final=True)))
    events = run(good + final.replace(b"XY", b"\xff\xe4\xbd") + frame("[DONE]"))
    assert joined(events, TextDelta) == "ok \ufffd\ufffd!"
    assert any(isinstance(event, Finish) for event in events)
    assert isinstance(events[-1], StreamEnd)
