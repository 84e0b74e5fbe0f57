"""SSEDecoder: framing only. A realistic reply must decode to the same events however it is split."""
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend_to_api.sse import ServerSentEvent, SSEDecoder, SSEFormatError

ANSWER = "你好，世界！👋🏽 Here is `data: x` and a line\nbreak, plus \u2028 and \x85 (not line ends)."
MESSAGE = json.dumps(
    {
        "message": {
            "id": "m-1",
            "author": {"role": "assistant", "name": None},
            "content": {"content_type": "text", "parts": [ANSWER]},
            "status": "in_progress",
            "recipient": "all",
        },
        "conversation_id": "c-1",
        "error": None,
    },
    ensure_ascii=False,
)

REPLY_LINES = [
    ": this is a comment",
    "event: ping",
    "data: 2024-01-01 12:00:00.123456",
    "",
    f"data: {MESSAGE}",
    "",
    "event: delta_encoding",
    'data: "v1"',
    "",
    "id: 7",
    "retry: 1500",
    "data: first line",
    "data:second line",
    "data:  leading space kept",
    "unknown: field is ignored",
    "",
    "data",
    "",
    "event: dropped-without-data",
    "",
    "data: after the reset ✓",
    "",
    "data: [DONE]",
    "",
]

EXPECTED = [
    ServerSentEvent(event="ping", data="2024-01-01 12:00:00.123456"),
    ServerSentEvent(event=None, data=MESSAGE),
    ServerSentEvent(event="delta_encoding", data='"v1"'),
    ServerSentEvent(event=None, data="first line\nsecond line\n leading space kept", id="7", retry=1500),
    ServerSentEvent(event=None, data="", id="7"),
    ServerSentEvent(event=None, data="after the reset ✓", id="7"),
    ServerSentEvent(event=None, data="[DONE]", id="7"),
]

LINE_ENDINGS = [b"\n", b"\r\n", b"\r"]


def reply_bytes(line_end: bytes) -> bytes:
    return line_end.join(line.encode() for line in REPLY_LINES) + line_end


def decode(pieces: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = []
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.finish()


def fragments(raw: bytes, size: int) -> list[bytes]:
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def test_reply_is_realistic():
    raw = reply_bytes(b"\n")
    assert "data: ".encode() in ANSWER.encode() and "👋".encode() in raw
    assert decode([raw]) == EXPECTED


@pytest.mark.parametrize("line_end", LINE_ENDINGS, ids=["LF", "CRLF", "CR"])
def test_every_two_piece_split_gives_the_same_events(line_end):
    raw = reply_bytes(line_end)
    for cut in range(len(raw) + 1):
        assert decode([raw[:cut], raw[cut:]]) == EXPECTED, f"split at byte {cut}"


@pytest.mark.parametrize("size", [1, 97, 100000])
@pytest.mark.parametrize("line_end", LINE_ENDINGS, ids=["LF", "CRLF", "CR"])
def test_fragments_give_the_same_events(line_end, size):
    assert decode(fragments(reply_bytes(line_end), size)) == EXPECTED


def test_events_arrive_as_soon_as_their_blank_line_does():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n") == []
    assert decoder.feed(b"\ndata: tw") == [ServerSentEvent(event=None, data="one")]
    assert decoder.feed(b"o\n\n") == [ServerSentEvent(event=None, data="two")]


def test_cr_at_chunk_end_then_cr_is_a_blank_line_not_a_crlf():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\r") == [ServerSentEvent(event=None, data="x")]


def test_mixed_line_endings():
    assert decode([b"data: a\r\ndata: b\rdata: c\n\r\n"]) == [ServerSentEvent(event=None, data="a\nb\nc")]


def test_finish_delivers_an_unterminated_last_event():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n\ndata: last") == [ServerSentEvent(event=None, data="one")]
    assert decoder.finish() == [ServerSentEvent(event=None, data="last")]


def test_finish_delivers_an_event_without_its_blank_line():
    decoder = SSEDecoder()
    assert decoder.feed(b"event: delta\r\ndata: {}\r\n") == []
    assert decoder.finish() == [ServerSentEvent(event="delta", data="{}")]


def test_finish_on_a_clean_end_delivers_nothing():
    decoder = SSEDecoder()
    decoder.feed(b"data: x\n\n")
    assert decoder.finish() == []


def test_line_over_the_limit_raises_even_when_it_arrives_in_pieces():
    decoder = SSEDecoder(max_line_bytes=16)
    assert decoder.feed(b"data: 0123456789\n\n")  # exactly 16 bytes is fine
    with pytest.raises(SSEFormatError):
        for piece in fragments(b"data: " + b"x" * 40, 3):  # never terminated: must not buffer forever
            decoder.feed(piece)
    with pytest.raises(SSEFormatError):
        decoder.feed(b"\n\n")  # the stream is broken from here on


def test_complete_line_over_the_limit_raises():
    with pytest.raises(SSEFormatError):
        SSEDecoder(max_line_bytes=8).feed(b"data: 0123456789\n\n")


def test_bad_utf8_is_replaced_not_raised():
    events = decode([b"data: \xff\xfe ok \xe4\xbd\n", b"\n"])
    assert events == [ServerSentEvent(event=None, data="\ufffd\ufffd ok \ufffd")]


def test_byte_order_mark_at_stream_start_is_dropped():
    assert decode([b"\xef\xbb", b"\xbfdata: x\n\n"]) == [ServerSentEvent(event=None, data="x")]


def test_field_without_colon_and_colon_without_space():
    assert decode([b"data\ndata:x\ndata: y\ndata:  z\n\n"]) == [
        ServerSentEvent(event=None, data="\nx\ny\n z")
    ]


def test_event_type_resets_after_dispatch_and_after_an_empty_event():
    events = decode([b"event: a\n\ndata: 1\n\nevent: b\ndata: 2\n\ndata: 3\n\n"])
    assert [(e.event, e.data) for e in events] == [(None, "1"), ("b", "2"), (None, "3")]


def test_retry_with_absurdly_many_digits_is_ignored():
    assert decode([b"retry: " + b"9" * 5000 + b"\ndata: x\n\n"]) == [ServerSentEvent(event=None, data="x")]


def test_cost_is_proportional_to_new_bytes():
    # A 4 MB line in 256-byte reads: re-scanning or re-joining the buffer on each feed would copy
    # ~30 GB here (many seconds); a linear decoder needs a few milliseconds.
    payload = b"data: " + b"a" * (4 * 1024 * 1024) + b"\n\n"
    decoder = SSEDecoder()
    started = time.perf_counter()
    events = []
    for piece in fragments(payload, 256):
        events += decoder.feed(piece)
    elapsed = time.perf_counter() - started
    assert len(events) == 1 and len(events[0].data) == 4 * 1024 * 1024
    assert elapsed < 2.0, f"decoding took {elapsed:.2f}s"


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=600), cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=8))
def test_arbitrary_bytes_decode_the_same_however_split(raw, cuts):
    bounds = sorted({0, len(raw), *(c for c in cuts if c <= len(raw))})
    pieces = [raw[a:b] for a, b in zip(bounds, bounds[1:])]
    assert decode(pieces) == decode([raw])


def test_data_is_kept_as_bytes_and_decoded_when_read():
    events = decode([b"event: caf\xc3\xa9\nid: 7\ndata: {\"a\": \"\xc3\xa9\"}\ndata: x\xff\n\n"])
    assert len(events) == 1
    event = events[0]
    assert event.raw_data == b'{"a": "\xc3\xa9"}\nx\xff'  # what came, for the JSON parser
    assert event.data == '{"a": "é"}\nx\ufffd' and event.event == "café" and event.id == "7"
