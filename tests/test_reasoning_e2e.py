"""Reasoning models (o1) end to end: visible thinking as reasoning_content, system prompt folding."""
from __future__ import annotations

import json

import pytest
import requests

from .conftest import directive
from .emulator.scenarios import THOUGHTS

ANSWER = "Hello! 你好 👋"
REASONING = "\n\n".join(f"{t['summary']}\n{t['content']}" for t in THOUGHTS)


def reasoning_of(chunks) -> str:
    return "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)


def content_of(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("encoding", ["cumulative", "v1"])
@pytest.mark.parametrize("model", ["o1-preview", "o1-mini"])
def test_thinking_streams_as_reasoning_content(proxy, encoding, model):
    chunks = list(proxy.client().chat.completions.create(
        model=model, stream=True,
        messages=[{"role": "user", "content": directive(emu="thinking", text=ANSWER, encoding=encoding, chunk=4)}]))
    assert reasoning_of(chunks) == REASONING
    assert content_of(chunks) == ANSWER  # the thinking never leaks into the answer, nor the recap
    # thinking first, then the answer; no chunk carries both
    kinds = [("r" if getattr(c.choices[0].delta, "reasoning_content", None) else "c")
             for c in chunks if c.choices and (c.choices[0].delta.content or
                                               getattr(c.choices[0].delta, "reasoning_content", None))]
    assert kinds == sorted(kinds, reverse=True) and kinds[0] == "r"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_thinking_in_non_stream_reply(proxy):
    reply = proxy.client().chat.completions.create(
        model="o1-preview", messages=[{"role": "user", "content": directive(emu="thinking", text=ANSWER)}])
    message = reply.choices[0].message
    assert message.content == ANSWER
    assert message.reasoning_content == REASONING
    # usage counts the answer only, as before
    assert reply.usage.completion_tokens < 20


def test_models_without_thinking_have_no_reasoning_field(proxy):
    response = requests.post(
        proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-plain"}, timeout=30,
        json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert "reasoning_content" not in response.text
    reply = proxy.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "reasoning_content" not in reply.choices[0].message.model_dump(exclude_none=True)


def test_o1_folds_the_system_prompt_into_the_first_user_turn(proxy, emulator):
    proxy.client().chat.completions.create(model="o1-mini", messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Salut"},
        {"role": "user", "content": "How are you?"},
    ])
    payload = emulator.conversations()[-1]["json"]
    assert payload["model"] == "o1-mini"
    assert payload["conversation_mode"] == {"kind": "primary_assistant"}
    turns = [(m["author"]["role"], m["content"]["parts"]) for m in payload["messages"]]
    assert turns == [
        ("user", ["Be brief.\n\nAnswer in French.\nHi"]),
        ("assistant", ["Salut"]),
        ("user", ["How are you?"]),
    ]
    assert json.dumps(payload).count("system") == 0


def test_interpreter_follows_v1_appends_inside_thoughts():
    """The real v1 stream grows thoughts by appending to their paths; each piece is reasoning once."""
    from backend_to_api.sse.decoder import ServerSentEvent
    from backend_to_api.sse.events import ReasoningDelta, TextDelta
    from backend_to_api.sse.interpret import ReplyInterpreter

    message = {"id": "m1", "author": {"role": "assistant"}, "recipient": "all", "status": "in_progress",
               "content": {"content_type": "thoughts", "thoughts": []}, "metadata": {}}
    frames = [
        {"p": "", "o": "add", "v": {"message": message, "conversation_id": "c1"}},
        {"p": "/message/content/thoughts", "o": "append", "v": [{"summary": "Plan", "content": ""}]},
        {"p": "/message/content/thoughts/0/content", "o": "append", "v": "Step one"},
        {"v": ", step two"},
        {"p": "/message/content/thoughts", "o": "append", "v": [{"summary": "Check", "content": "ok"}]},
    ]
    interpreter = ReplyInterpreter()
    events = [interpreter.feed(ServerSentEvent(event="delta_encoding", data='"v1"'))]
    events += [interpreter.feed(ServerSentEvent(event="delta", data=json.dumps(f))) for f in frames]
    flat = [e for batch in events for e in batch]
    assert "".join(e.text for e in flat if isinstance(e, ReasoningDelta)) == "Plan\nStep one, step two\n\nCheck\nok"
    assert not [e for e in flat if isinstance(e, TextDelta)]
