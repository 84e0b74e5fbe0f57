"""POST /v1/chat/completions end to end: openai SDK -> proxy (gunicorn) -> emulated backend-api."""
from __future__ import annotations

import json
import time

import openai
import pytest
import requests

from .conftest import directive

TEXT = "你好，世界！🌍 data: not a frame\n```py\nprint('data: x')\n```\nEnd. 👋🏽"


def stream_text(client, content: str, model: str = "gpt-4o", **kwargs):
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}],
                                            stream=True, **kwargs)
    return list(stream)


def joined(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def raw_stream(proxy, content: str, api_key: str = "rt-raw", **body):
    response = requests.post(
        proxy.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}], "stream": True, **body},
        stream=True, timeout=30,
    )
    return response, response.content.decode("utf-8")


def test_non_stream_returns_the_exact_text_and_usage(proxy):
    reply = proxy.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": directive(text=TEXT)}])
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == TEXT
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens > 5
    assert reply.usage.prompt_tokens > 5
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


@pytest.mark.parametrize("encoding", ["cumulative", "v1"])
@pytest.mark.parametrize("fragment", [0, 1])
def test_stream_reproduces_every_character(proxy, encoding, fragment):
    chunks = stream_text(proxy.client(), directive(text=TEXT, encoding=encoding, chunk=2, fragment=fragment))
    assert joined(chunks) == TEXT
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks].count("stop") == 1
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_crlf_upstream_framing(proxy):
    assert joined(stream_text(proxy.client(), directive(text=TEXT, crlf=True))) == TEXT


def test_usage_chunk_only_when_asked(proxy):
    chunks = stream_text(proxy.client(), directive(text="four words right here"),
                         stream_options={"include_usage": True})
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    # OpenAI's other chunks then say "usage": null; without include_usage no chunk has the field.
    _, asked = raw_stream(proxy, directive(text="four words right here"), stream_options={"include_usage": True})
    _, plain = raw_stream(proxy, directive(text="four words right here"))
    frames = [json.loads(line[6:]) for line in asked.splitlines() if line.startswith("data: {")]
    assert all(frame["usage"] is None for frame in frames[:-1]) and frames[-1]["usage"]["completion_tokens"] == 4
    assert not any('"usage"' in line for line in plain.splitlines())


def test_wire_format(proxy):
    response, body = raw_stream(proxy, directive(text="line one\nline two"))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert body.endswith("data: [DONE]\n\n")
    events = [e for e in body.split("\n\n") if e]
    for event in events[:-1]:
        assert event.startswith("data: ") and "\n" not in event
        chunk = json.loads(event[6:])
        assert chunk["object"] == "chat.completion.chunk"
        assert "finish_reason" in chunk["choices"][0] and "logprobs" in chunk["choices"][0]


def test_max_tokens_gives_finish_reason_length(proxy):
    chunks = stream_text(proxy.client(), directive(text="cut short", finish="max_tokens"))
    assert chunks[-1].choices[0].finish_reason == "length"
    reply = proxy.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": directive(text="cut", finish="max_tokens")}])
    assert reply.choices[0].finish_reason == "length"


@pytest.mark.parametrize("encoding", ["cumulative", "v1"])
def test_no_character_lost_around_tool_messages(proxy, encoding):
    content = directive(emu="tools", text="Let me run it.", code="print(1+1)", output="2", after="The answer is 2.",
                        encoding=encoding)
    expected = "Let me run it.\n```\nprint(1+1)\n```\n`Result:` \n```\n2\n```\nThe answer is 2."
    assert joined(stream_text(proxy.client(), content)) == expected
    reply = proxy.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    assert reply.choices[0].message.content == expected


def test_rewritten_upstream_text_produces_no_garbage(proxy):
    # The upstream sends "Hello " then restarts the message from "Hel": nothing may repeat.
    content = directive(emu="rewrite", draft="Hello wrld", text="Hello world!", chunk=3, after_chunks=2)
    assert joined(stream_text(proxy.client(), content)) == "Hello world!"


def test_garbage_frames_are_skipped(proxy):
    assert joined(stream_text(proxy.client(), directive(emu="garbage", text="still fine"))) == "still fine"


def test_missing_stream_field_means_json(proxy):
    response = requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-nostream"},
                             json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Echo: hi"
    assert body["choices"][0]["message"]["refusal"] is None and body["choices"][0]["logprobs"] is None
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_messages_are_translated_in_order(proxy, emulator):
    proxy.client().chat.completions.create(model="gpt-3.5-turbo", temperature=0.2, top_p=1, max_tokens=50,
                                           messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "last"},
    ])
    payload = emulator.conversations()[-1]["json"]
    assert payload["model"] == "text-davinci-002-render-sha"
    assert payload["action"] == "next" and payload["conversation_mode"] == {"kind": "primary_assistant"}
    assert [m["author"]["role"] for m in payload["messages"]] == ["system", "user", "assistant", "user"]
    assert payload["messages"][1]["content"] == {"content_type": "text", "parts": ["part one\npart two"]}
    assert len({m["id"] for m in payload["messages"]}) == 4


@pytest.mark.parametrize("model,slug", [
    ("gpt-3.5-turbo", "text-davinci-002-render-sha"), ("gpt-4-s", "gpt-4"), ("gpt-4-mobile", "gpt-4-mobile"),
    ("gpt-4o", "gpt-4o"), ("gpt-4o-mini", "gpt-4o-mini"),
])
def test_model_slugs(proxy, emulator, model, slug):
    reply = proxy.client().chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert reply.model == model
    assert emulator.conversations()[-1]["json"]["model"] == slug


def test_unknown_model_is_404_not_401(proxy):
    with pytest.raises(openai.NotFoundError) as info:
        proxy.client().chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "model_not_found"


def test_billing_stubs_for_nextchat_and_one_api(proxy):
    # NextChat's settings page and one-api's balance refresh ask these; a ChatGPT account has no API
    # balance, so: a fixed limit and zero usage, in the fields both read.
    headers = {"Authorization": "Bearer rt-billing"}
    for base in ("/dashboard/billing", "/v1/dashboard/billing"):
        subscription = requests.get(proxy.url + base + "/subscription", headers=headers, timeout=5)
        usage = requests.get(proxy.url + base + "/usage?start_date=2026-11-01&end_date=2026-11-28",
                             headers=headers, timeout=5)
        assert subscription.status_code == 200 and usage.status_code == 200
        assert subscription.json()["object"] == "billing_subscription"
        assert subscription.json()["hard_limit_usd"] > 0 and subscription.json()["has_payment_method"] is True
        assert usage.json() == {"object": "list", "total_usage": 0}


def test_models_list(proxy):
    ids = [m.id for m in proxy.client().models.list()]
    assert {"gpt-3.5-turbo", "gpt-4-s", "gpt-4-mobile", "gpt-4o", "gpt-4o-mini"} <= set(ids)


@pytest.mark.parametrize("body,param", [
    ({"model": "gpt-4o", "messages": []}, "messages"),
    ({"model": "gpt-4o"}, "messages"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
])
def test_bad_requests_are_400_with_openai_error(proxy, body, param):
    response = requests.post(proxy.url + "/v1/chat/completions", json=body,
                             headers={"Authorization": "Bearer rt-x"}, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_malformed_json_and_catch_alls(proxy):
    bad = requests.post(proxy.url + "/v1/chat/completions", data="{nope", headers={
        "Authorization": "Bearer rt-x", "Content-Type": "application/json"}, timeout=10)
    assert bad.status_code == 400 and "error" in bad.json()
    missing = requests.get(proxy.url + "/nothing/here", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong_method = requests.get(proxy.url + "/v1/chat/completions", timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "invalid_request_error"


def test_cors_everywhere(proxy):
    preflight = requests.options(proxy.url + "/v1/chat/completions", headers={
        "Origin": "https://app.nextchat.dev", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"}, timeout=10)
    assert preflight.status_code in (200, 204)
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    error = requests.post(proxy.url + "/v1/chat/completions", json={}, headers={"Origin": "https://x.example"}, timeout=10)
    assert error.headers["Access-Control-Allow-Origin"] == "*"


def test_health_and_readiness(proxy):
    assert requests.get(proxy.url + "/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(proxy.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["store"] == "redis"


def test_one_chat_after_another_reuses_the_upstream_connections(proxy, emulator):
    # Each gunicorn worker (2 here) keeps its upstream connection for the next chat, streamed or
    # not: a chat that must open a new one pays a TCP (and, to a real upstream, a TLS) handshake.
    since = time.time()
    client = proxy.client()
    for _ in range(5):
        assert joined(stream_text(client, directive(text="again", chunk=2))) == "again"
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
    ports = [s["client_port"] for s in emulator.streams() if s["started"] >= since]
    assert len(ports) == 10 and len(set(ports)) <= 2, ports
