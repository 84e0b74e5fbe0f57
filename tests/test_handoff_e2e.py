"""A reply the upstream moves to its WebSocket (spec backend-api-2026.md 3.6, and the 2024
`wss_url` answer), end to end: the emulator's HTTP stream carries only metadata and the hand-off
topic (or the POST answers JSON), its WebSocket server (tests/emulator/handoff.py) the reply.
Through the real proxy, with the openai SDK and with raw SSE read the way NextChat reads it."""
from __future__ import annotations

import json
import time

import openai
import pytest
import requests

from .conftest import directive
from .emulator.thinking_content import THOUGHTS_2026
from .test_reasoning_e2e import content_of, reasoning_of
from .test_thinking_2026_e2e import kinds_of, nextchat_stream

ANSWER = "Hello! 你好 🙂 Handed off, and back."
THOUGHTS_TEXT = "\n\n".join(f"{t['summary']}\n{t['content']}" for t in THOUGHTS_2026)


def handoff_records(emulator) -> list[dict]:
    return requests.get(emulator.url + "/_emulator/handoff", timeout=5).json()


def connections_since(emulator, count: int) -> list[dict]:
    return handoff_records(emulator)[count:]


def wait_for_close(emulator, before: int) -> dict:
    """The one WebSocket opened since ``before`` connections, once the emulator saw it closed."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        (connection,) = connections_since(emulator, before)
        if connection["closed"]:
            return connection
        time.sleep(0.05)
    raise AssertionError("the hand-off WebSocket was not closed within 5 s")


def ask(model: str, **values) -> list[dict]:
    return [{"role": "user", "content": directive(**values)}]


@pytest.mark.parametrize("encoding", ["v1", "cumulative"])
def test_thinking_reply_handed_off_streams_in_full(proxy, emulator, encoding):
    before = len(handoff_records(emulator))
    chunks = list(proxy.client().chat.completions.create(
        model="gpt-5-thinking", stream=True,
        messages=ask("gpt-5-thinking", emu="handoff_thinking", text=ANSWER, encoding=encoding, chunk=4)))
    assert reasoning_of(chunks) == THOUGHTS_TEXT
    assert content_of(chunks) == ANSWER
    kinds = kinds_of(chunks)
    assert kinds[0] == "r" and kinds == sorted(kinds, reverse=True)
    assert kinds.count("r") > len(THOUGHTS_2026) * 2  # streamed as the items came
    assert chunks[-1].choices[0].finish_reason == "stop"
    (connection,) = connections_since(emulator, before)
    commands = [c["command"] for c in connection["commands"]]
    assert commands[0]["type"] == "connect"
    assert {c["topic_id"] for c in commands[1:4]} == {"calpico-chatgpt", "conversations", "app_notifications"}
    assert commands[-1]["topic_id"].startswith("conversation-turn-") and commands[-1]["offset"] == "0"
    wait_for_close(emulator, before)  # closed once [DONE] came


def test_thinking_reply_handed_off_non_stream(proxy):
    reply = proxy.client().chat.completions.create(
        model="gpt-5-thinking", messages=ask("gpt-5-thinking", emu="handoff_thinking", text=ANSWER, encoding="v1"))
    assert reply.choices[0].message.content == ANSWER
    assert reply.choices[0].message.reasoning_content == THOUGHTS_TEXT
    assert reply.choices[0].finish_reason == "stop"


def test_nextchat_reads_a_handed_off_thinking_reply(proxy):
    chunks, datas = nextchat_stream(proxy, {"model": "gpt-5-thinking", "messages": ask(
        "gpt-5-thinking", emu="handoff_thinking", text=ANSWER, encoding="v1", chunk=2)})
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == THOUGHTS_TEXT
    assert "".join(d.get("content") or "" for d in deltas) == ANSWER
    body = "\n".join(datas)
    for absent in ("stream_handoff", "conversation-turn-", "encoded_item", '"error"'):
        assert absent not in body
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("encoding", ["v1", "cumulative"])
def test_catchups_and_live_items_each_count_once(proxy, encoding):
    text = "Caught up, then live: every piece exactly once."
    chunks = list(proxy.client().chat.completions.create(
        model="gpt-4o", stream=True, messages=ask("gpt-4o", emu="handoff_catchup", text=text, encoding=encoding,
                                                  chunk=2)))
    assert content_of(chunks) == text
    reply = proxy.client().chat.completions.create(
        model="gpt-4o", messages=ask("gpt-4o", emu="handoff_catchup", text=text, encoding=encoding))
    assert reply.choices[0].message.content == text


def test_silent_handoff_ends_with_an_error_frame_after_keep_alives(start_proxy):
    proxy = start_proxy({"UPSTREAM_READ_TIMEOUT": "2"})
    try:
        started = time.monotonic()
        response = requests.post(proxy.url + "/v1/chat/completions", stream=True, timeout=30,
                                 headers={"Authorization": "Bearer rt-silent"},
                                 json={"model": "gpt-4o", "stream": True,
                                       "messages": ask("gpt-4o", emu="handoff_silent", text="Started, then silence",
                                                       hang=20)})
        assert response.status_code == 200
        raw = b"".join(response.iter_content(None)).decode()
        elapsed = time.monotonic() - started
    finally:
        proxy.stop()
    assert 2 <= elapsed < 10
    datas = [line[5:].strip() for line in raw.splitlines() if line.startswith("data:")]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text.startswith("Starte")  # after_chunks (2) events of 3 characters
    errors = [c["error"] for c in chunks if "error" in c]
    assert errors and errors[0]["code"] == "upstream_timeout"
    # keep-alives went out during the 2 s of silence (KEEP_ALIVE_INTERVAL is 1 s in the tests)
    silence = raw[raw.index("te\""):raw.index('"upstream_timeout"')]
    assert silence.count(": keep-alive") >= 1


def test_client_leaving_mid_handoff_closes_the_websocket(proxy, emulator):
    before = len(handoff_records(emulator))
    response = requests.post(proxy.url + "/v1/chat/completions", stream=True, timeout=30,
                             headers={"Authorization": "Bearer rt-leaver"},
                             json={"model": "gpt-4o", "stream": True,
                                   "messages": ask("gpt-4o", emu="handoff_silent", text="Started, then gone",
                                                   hang=30)})
    for line in response.iter_lines():
        if b'"content":"' in line and b'"content":""' not in line:
            break  # the first text came from the WebSocket: the hand-off is under way
    time.sleep(0.3)
    left = time.time()
    response.close()
    connection = wait_for_close(emulator, before)
    assert connection["closed"] - left < 1.5


@pytest.mark.parametrize("emu", ["wss_2024", "wss_2024_register"])
def test_2024_wss_answer_is_read_from_the_socket(proxy, emulator, emu):
    text = "An old-style reply, base64 frame by frame, acknowledged as it goes along the way."
    before = len(handoff_records(emulator))
    chunks = list(proxy.client().chat.completions.create(
        model="gpt-4o", stream=True, messages=ask("gpt-4o", emu=emu, text=text, chunk=1)))
    assert content_of(chunks) == text
    assert chunks[-1].choices[0].finish_reason == "stop"
    (connection,) = connections_since(emulator, before)
    assert connection["path"].startswith("/wss/")
    assert connection["acks"] == [79]  # every 80 frames: the text is ~90 of them
    reply = proxy.client().chat.completions.create(model="gpt-4o", messages=ask("gpt-4o", emu=emu, text=text))
    assert reply.choices[0].message.content == text


def test_2024_wss_url_that_cannot_be_reached_is_a_clear_502(proxy):
    with pytest.raises(openai.APIStatusError) as info:
        proxy.client().chat.completions.create(model="gpt-4o", messages=ask(
            "gpt-4o", emu="http_error", status=200, body={"wss_url": "wss://example.invalid/x"},
            content_type="application/json"))
    assert info.value.status_code == 502 and info.value.body["code"] == "upstream_unreachable"
    with pytest.raises(openai.APIStatusError) as info:  # JSON that names no socket stays what it was
        proxy.client().chat.completions.create(model="gpt-4o", messages=ask(
            "gpt-4o", emu="http_error", status=200, body={"detail": "odd"}, content_type="application/json"))
    assert info.value.status_code == 502 and info.value.body["code"] == "upstream_not_a_stream"


def test_topic_derived_from_the_turn_id_is_followed(proxy):
    text = "Found by the turn's id alone."
    chunks, _ = nextchat_stream(proxy, {"model": "gpt-4o", "messages": ask(
        "gpt-4o", emu="handoff_derived", text=text, encoding="v1")})
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == text
    reply = proxy.client().chat.completions.create(
        model="gpt-4o", messages=ask("gpt-4o", emu="handoff_derived", text=text))
    assert reply.choices[0].message.content == text


def test_topic_error_marker_ends_the_reply_with_an_error(proxy):
    chunks, datas = nextchat_stream(proxy, {"model": "gpt-4o", "messages": ask(
        "gpt-4o", emu="handoff_error", text="Begun, then the upstream failed")})
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text.startswith("Begun")
    assert "[error:" in text  # the error note, then the error frame before the closing chunk
    assert "error" in chunks[-2] and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    with pytest.raises(openai.APIStatusError) as info:
        proxy.client().chat.completions.create(model="gpt-4o", messages=ask(
            "gpt-4o", emu="handoff_error", text="Begun, then the upstream failed"))
    assert info.value.status_code == 502


def test_websocket_url_on_a_private_address_is_refused(proxy, emulator):
    before = len(handoff_records(emulator))
    with pytest.raises(openai.APIStatusError) as info:
        proxy.client("rt-ws-metadata-" + str(time.time())).chat.completions.create(
            model="gpt-4o", messages=ask("gpt-4o", emu="handoff_derived", text="never shown"))
    assert info.value.status_code == 502
    assert info.value.body["code"] == "upstream_handoff_failed"
    assert "private or local" in info.value.body["message"]
    assert handoff_records(emulator)[before:] == []


def test_handoff_under_the_gthread_worker(start_proxy):
    proxy = start_proxy({"WORKER_CLASS": "gthread", "PROCESS_WORKERS": "1", "PROCESS_THREADS": "4"})
    try:
        chunks = list(proxy.client().chat.completions.create(
            model="gpt-5-thinking", stream=True,
            messages=ask("gpt-5-thinking", emu="handoff_thinking", text=ANSWER, encoding="v1")))
        reply = proxy.client().chat.completions.create(
            model="gpt-4o", messages=ask("gpt-4o", emu="wss_2024", text=ANSWER))
    finally:
        proxy.stop()
    assert reasoning_of(chunks) == THOUGHTS_TEXT and content_of(chunks) == ANSWER
    assert reply.choices[0].message.content == ANSWER
