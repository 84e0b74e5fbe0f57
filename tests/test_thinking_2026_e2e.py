"""The 2026 reply stream end to end (spec backend-api-2026.md 3.1-3.5): typed events, packed
`data:` lines, thinking (`thoughts` patches, the `analysis` channel) as reasoning_content, the
answering model's name, a blocking moderation event. Through the real proxy, with the openai SDK
and with raw SSE read the way NextChat reads it."""
from __future__ import annotations

import json
import time

import openai
import pytest
import requests

from .conftest import directive
from .emulator.thinking_content import ANALYSIS, AUTO_ROUTED, RECAP, STATUS_TEXTS, THOUGHTS_2026

from .test_reasoning_e2e import content_of, reasoning_of

ANSWER = "Hello! 你好 🙂 Nice to meet you."
THOUGHTS_TEXT = "\n\n".join(f"{t['summary']}\n{t['content']}" for t in THOUGHTS_2026)


def kinds_of(chunks) -> list[str]:
    """"r" for a thinking chunk, "c" for an answer chunk, in order (no chunk carries both)."""
    kinds = []
    for chunk in chunks:
        delta = chunk.choices[0].delta if chunk.choices else None
        reasoning = getattr(delta, "reasoning_content", None) if delta else None
        assert not (reasoning and delta.content)
        if reasoning or (delta and delta.content):
            kinds.append("r" if reasoning else "c")
    return kinds


def nextchat_stream(proxy, body: dict) -> tuple[list[dict], list[str]]:
    """What NextChat's fetchEventSource hands its onmessage: each event's data, [DONE] ends it;
    returns the parsed chunks and every data string, in order."""
    response = requests.post(proxy.url + "/v1/chat/completions", json={**body, "stream": True}, stream=True,
                             headers={"Authorization": "Bearer rt-nextchat"}, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    datas, lines = [], []
    for line in response.iter_lines(decode_unicode=False):
        line = line.decode("utf-8")
        if line:
            lines.append(line)
            continue
        data = "\n".join(item[5:].lstrip(" ") for item in lines if item.startswith("data:"))
        lines = []
        if data:
            datas.append(data)
    assert datas[-1] == "[DONE]"
    return [json.loads(data) for data in datas[:-1]], datas


@pytest.mark.parametrize("encoding", ["v1", "cumulative"])
def test_gpt5_thinking_streams_thoughts_as_reasoning_content(proxy, encoding):
    chunks = list(proxy.client().chat.completions.create(
        model="gpt-5-thinking", stream=True,
        messages=[{"role": "user",
                   "content": directive(emu="thinking_2026", text=ANSWER, encoding=encoding, chunk=4)}]))
    assert reasoning_of(chunks) == THOUGHTS_TEXT
    assert content_of(chunks) == ANSWER
    kinds = kinds_of(chunks)
    assert kinds == sorted(kinds, reverse=True) and kinds[0] == "r"
    assert kinds.count("r") > len(THOUGHTS_2026) * 2  # streamed piece by piece, not at the end
    assert chunks[-1].choices[0].finish_reason == "stop"
    # the answering model is the one asked for: the client's own name in every chunk
    assert {chunk.model for chunk in chunks} == {"gpt-5-thinking"}


def test_gpt5_thinking_non_stream(proxy):
    reply = proxy.client().chat.completions.create(
        model="gpt-5-thinking",
        messages=[{"role": "user", "content": directive(emu="thinking_2026", text=ANSWER, encoding="v1")}])
    message = reply.choices[0].message
    assert message.content == ANSWER
    assert message.reasoning_content == THOUGHTS_TEXT
    assert reply.choices[0].finish_reason == "stop" and reply.model == "gpt-5-thinking"


def test_nextchat_sees_thinking_then_answer_and_nothing_of_the_typed_events(proxy):
    chunks, datas = nextchat_stream(proxy, {"model": "gpt-5-thinking", "messages": [
        {"role": "user", "content": directive(emu="thinking_2026", text=ANSWER, encoding="v1", chunk=2)}]})
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == THOUGHTS_TEXT
    assert "".join(d.get("content") or "" for d in deltas) == ANSWER
    body = "\n".join(datas)
    # recap, status texts, titles, markers, token and metadata: none reaches the client
    for absent in (RECAP, STATUS_TEXTS[0], "Emulated conversation", "last_token", "emu-resume-",
                   "server_ste_metadata", "turn_exchange_id", '"error"'):
        assert absent not in body
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("encoding", ["v1", "cumulative"])
def test_auto_reply_analysis_is_reasoning_final_is_content_model_is_who_answered(proxy, encoding):
    chunks = list(proxy.client().chat.completions.create(
        model="auto", stream=True,
        messages=[{"role": "user", "content": directive(emu="auto_channels", text=ANSWER, encoding=encoding)}]))
    assert reasoning_of(chunks) == ANALYSIS
    assert content_of(chunks) == ANSWER
    assert kinds_of(chunks)[0] == "r"
    # model_slug came with the first message, before any chunk went out: every chunk says it
    assert {chunk.model for chunk in chunks} == {AUTO_ROUTED}
    reply = proxy.client().chat.completions.create(
        model="auto", messages=[{"role": "user", "content": directive(emu="auto_channels", text=ANSWER)}])
    assert reply.model == AUTO_ROUTED
    assert reply.choices[0].message.content == ANSWER
    assert reply.choices[0].message.reasoning_content == ANALYSIS


def test_nextchat_reads_the_answering_model_from_every_chunk(proxy):
    chunks, _ = nextchat_stream(proxy, {"model": "gpt-5-6-thinking", "messages": [
        {"role": "user", "content": directive(emu="auto_channels", text=ANSWER, encoding="v1")}]})
    assert {chunk["model"] for chunk in chunks} == {AUTO_ROUTED}
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == ANALYSIS
    assert "".join(d.get("content") or "" for d in deltas) == ANSWER


@pytest.mark.parametrize("model, slug, shown", [
    ("gpt-4o", "gpt-4o-mini", "gpt-4o-mini"),  # the upstream answered with another model: say so
    ("gpt-4.1", None, "gpt-4.1"),              # sent as gpt-4-1, answered by it: the client's name
    ("gpt-5.2", None, "gpt-5.2"),
])
def test_model_field_follows_model_slug_only_when_another_model_answered(proxy, emulator, model, slug, shown):
    extra = {"model_slug": slug} if slug else {}
    content = directive(emu="text", text=ANSWER, encoding="v1", **extra)
    chunks = list(proxy.client().chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": content}]))
    assert {chunk.model for chunk in chunks} == {shown}
    assert content_of(chunks) == ANSWER
    reply = proxy.client().chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    assert reply.model == shown


def test_thinking_reaches_the_client_while_the_upstream_is_still_thinking(proxy):
    """reasoning_content is streamed as it arrives: the first piece long before the answer."""
    stream = proxy.client().chat.completions.create(
        model="gpt-5-thinking", stream=True,
        messages=[{"role": "user", "content": directive(emu="thinking_2026", text=ANSWER, encoding="v1",
                                                        chunk=8, interval=0.05)}])
    started, first_reasoning, first_content = time.monotonic(), None, None
    for chunk in stream:
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is not None and getattr(delta, "reasoning_content", None) and first_reasoning is None:
            first_reasoning = time.monotonic() - started
        if delta is not None and delta.content and first_content is None:
            first_content = time.monotonic() - started
    # 10 thought events and half the answer's come 50 ms apart before the first answer text
    assert first_reasoning is not None and first_content is not None
    assert first_content - first_reasoning > 0.3


@pytest.mark.parametrize("stream", [False, True])
def test_moderation_that_blocks_before_any_text_is_a_400_content_policy_error(proxy, stream):
    with pytest.raises(openai.BadRequestError) as caught:
        result = proxy.client(max_retries=0).chat.completions.create(
            model="gpt-5", stream=stream,
            messages=[{"role": "user", "content": directive(emu="moderation_block", after_chunks=0, encoding="v1")}])
        list(result) if stream else None
    assert caught.value.status_code == 400
    assert caught.value.code == "content_policy_violation"
    assert "content policy" in caught.value.message


def test_moderation_that_blocks_mid_reply_ends_the_stream_with_an_error(proxy):
    chunks, datas = nextchat_stream(proxy, {"model": "gpt-5", "messages": [
        {"role": "user", "content": directive(emu="moderation_block", text=ANSWER, chunk=3, after_chunks=2,
                                              encoding="v1")}]})
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert content.startswith(ANSWER[:6])
    assert "content policy" in content  # NextChat shows the note; the error frame says it too
    errors = [c for c in chunks if "error" in c]
    assert len(errors) == 1 and "content policy" in errors[0]["error"]["message"]
    # without streaming nothing was sent yet: the same 400 as a turn blocked at once
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.client(max_retries=0).chat.completions.create(model="gpt-5", messages=[
            {"role": "user", "content": directive(emu="moderation_block", text=ANSWER, after_chunks=2)}])
    assert caught.value.code == "content_policy_violation" and "content policy" in caught.value.message


def test_v1_error_frame_mid_stream_reaches_the_client(proxy):
    chunks, _ = nextchat_stream(proxy, {"model": "gpt-4o", "messages": [
        {"role": "user", "content": directive(emu="error_midstream", text=ANSWER, encoding="v1",
                                              error="Conversation not found")}]})
    errors = [c for c in chunks if "error" in c]
    assert len(errors) == 1 and "Conversation not found" in errors[0]["error"]["message"]
