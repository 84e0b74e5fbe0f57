"""The WebSocket hand-off's edges (issue 14 gaps): a 401 on the socket's lookup refreshes the token
once; the upstream is pinged every `handoff_ping_interval` through a long silence. Through the real
proxy, against the emulator's WebSocket (tests/emulator/handoff.py, its lookup rules:
POST /_emulator/handoff/lookup). Clients that leave meanwhile: test_leaving_while_dialing_e2e.py."""
from __future__ import annotations

import json
import time
import uuid

import openai
import pytest
import requests

from .test_handoff_e2e import ANSWER, THOUGHTS_TEXT, ask, connections_since, handoff_records
from .test_reasoning_e2e import content_of, reasoning_of
from .test_thinking_2026_e2e import nextchat_stream

CELSIUS = "/backend-api/celsius/ws/user"
REGISTER = "/backend-api/register-websocket"


def lookup_rule(emulator, subject: str, refuse: int = 0, delay: float = 0.0) -> None:
    requests.post(emulator.url + "/_emulator/handoff/lookup", json={"subject": subject, "refuse": refuse,
                                                                    "delay": delay}, timeout=5).raise_for_status()


def subject(name: str) -> str:
    return f"rt-{name}-{uuid.uuid4().hex[:10]}"


def calls_since(emulator, path: str, since: float) -> list:
    return [r for r in emulator.requests(path) if r["time"] >= since]


# --- 401 on the lookup ---------------------------------------------------------------------------

@pytest.mark.parametrize("emu, path", [("handoff_thinking", CELSIUS), ("wss_2024_register", REGISTER)])
def test_a_401_on_the_socket_lookup_refreshes_the_token_once_and_the_reply_arrives_whole(proxy, emulator, emu, path):
    key = subject("ws-401-once")
    lookup_rule(emulator, key, refuse=1)
    since = time.time()
    chunks = list(proxy.client(key).chat.completions.create(
        model="gpt-5-thinking", stream=True,
        messages=ask("gpt-5-thinking", emu=emu, text=ANSWER, encoding="v1", chunk=4)))
    assert content_of(chunks) == ANSWER
    if emu == "handoff_thinking":
        assert reasoning_of(chunks) == THOUGHTS_TEXT
    lookups = calls_since(emulator, path, since)
    assert len(lookups) == 2  # refused, then asked again with the refreshed token
    assert lookups[0]["headers"]["Authorization"] != lookups[1]["headers"]["Authorization"]
    assert len(calls_since(emulator, "/applelogin", since)) == 2  # the first exchange and the one refresh
    assert len(calls_since(emulator, "/backend-api/conversation", since)) == 1  # the turn is never posted again


def test_a_lookup_still_refused_after_the_refresh_is_a_clear_502(proxy, emulator):
    key = subject("ws-401-always")
    lookup_rule(emulator, key, refuse=100)
    since = time.time()
    with pytest.raises(openai.APIStatusError) as info:
        proxy.client(key).chat.completions.create(
            model="gpt-5-thinking", messages=ask("gpt-5-thinking", emu="handoff_thinking", text=ANSWER))
    assert info.value.status_code == 502
    assert info.value.body["code"] == "upstream_handoff_failed"
    assert "HTTP 401" in info.value.body["message"] and "after a refresh" in info.value.body["message"]
    assert len(calls_since(emulator, CELSIUS, since)) == 2  # once refreshed, never more
    assert len(calls_since(emulator, "/backend-api/conversation", since)) == 1


def test_a_refused_lookup_after_the_headers_ends_the_stream_with_an_error_frame(start_proxy, emulator):
    # The headers go out after FIRST_EVENT_TIMEOUT (0.5 s), before the upstream's stream starts
    # (first_delay 1 s): the failure then arrives mid-stream, as an error frame before [DONE], as
    # NextChat reads it.
    proxy = start_proxy({"FIRST_EVENT_TIMEOUT": "0.5"})
    key = subject("ws-401-late")
    lookup_rule(emulator, key, refuse=100)
    try:
        response = requests.post(proxy.url + "/v1/chat/completions", stream=True, timeout=30,
                                 headers={"Authorization": f"Bearer {key}"},
                                 json={"model": "gpt-4o", "stream": True,
                                       "messages": ask("gpt-4o", emu="handoff_thinking", text=ANSWER,
                                                       first_delay=1.0)})
        assert response.status_code == 200
        datas = [line[5:].strip() for line in response.iter_lines(decode_unicode=True) if line.startswith("data:")]
    finally:
        proxy.stop()
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    errors = [c["error"] for c in chunks if "error" in c]
    assert errors and errors[0]["code"] == "upstream_handoff_failed" and "HTTP 401" in errors[0]["message"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


# --- pings ------------------------------------------------------------------------------------------

def test_a_long_silence_on_the_socket_gets_pings_and_the_reply_still_ends_whole(start_proxy, emulator):
    proxy = start_proxy({"HANDOFF_PING_INTERVAL": "0.2"})
    text = "Paused on the socket for a while, then the rest of it."
    before = len(handoff_records(emulator))
    try:
        chunks = list(proxy.client().chat.completions.create(
            model="gpt-4o", stream=True,
            messages=ask("gpt-4o", emu="handoff_pause", text=text, chunk=5, after_chunks=3, hang=1.5)))
    finally:
        proxy.stop()
    assert content_of(chunks) == text
    assert chunks[-1].choices[0].finish_reason == "stop"
    (connection,) = connections_since(emulator, before)
    pings = connection["pings"]
    assert len(pings) >= 4, pings  # ~7 in the 1.5 s silence at one per 0.2 s
    gaps = [later - earlier for earlier, later in zip(pings, pings[1:])]
    assert min(gaps) >= 0.15, gaps  # paced by the setting, not a busy loop


def test_the_default_ping_interval_sends_none_in_a_short_reply(proxy, emulator):
    before = len(handoff_records(emulator))
    chunks = list(proxy.client().chat.completions.create(
        model="gpt-4o", stream=True, messages=ask("gpt-4o", emu="handoff_pause", text="short", after_chunks=1,
                                                  hang=0.5)))
    assert content_of(chunks) == "short"
    (connection,) = connections_since(emulator, before)
    assert connection["pings"] == []  # 25 s by default


# --- as NextChat reads it (raw SSE, no SDK) -----------------------------------------------------------

@pytest.mark.parametrize("emu", ["handoff_thinking", "wss_2024"])
def test_nextchat_reads_a_handed_off_reply_with_the_model_that_answered(proxy, emu):
    chunks, datas = nextchat_stream(proxy, {"model": "gpt-5-thinking", "messages": ask(
        "gpt-5-thinking", emu=emu, text=ANSWER, encoding="v1", chunk=3, model_slug="gpt-5-2-thinking")})
    assert {chunk["model"] for chunk in chunks} == {"gpt-5-2-thinking"}  # the upstream named another model
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == ANSWER
    if emu == "handoff_thinking":
        reasoning = [d["reasoning_content"] for d in deltas if d.get("reasoning_content")]
        assert "".join(reasoning) == THOUGHTS_TEXT and len(reasoning) > 1  # streamed, not one block
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert not [data for data in datas if "sequenceId" in data or "encoded_item" in data]
