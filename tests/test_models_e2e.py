"""Models as data and discovery, end to end through the openai SDK (and raw SSE as NextChat reads it):
reasoning_effort in the upstream's words, dotted names, the account's model list (GET
/backend-api/models, fetched once per account and shared through Redis), upstream-only slugs passed
through, unknown names 404, and a failing discovery that never fails a chat."""
from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from backend_to_api.translate.uploads import account_fingerprint

from .emulator.tokens import decode_payload, mint_access_token

HELLO = [{"role": "user", "content": "hi"}]


def fresh_key(tag: str) -> str:
    """A refresh token of its own: a new account, so nothing cached by another test applies."""
    return f"rt-models-{tag}-{uuid.uuid4().hex[:8]}"


def set_account_models(emulator, subject: str, **answer) -> None:
    requests.post(emulator.url + "/_emulator/account_models", json={"subject": subject, **answer},
                  timeout=5).raise_for_status()


def model_list_calls(emulator, subject: str) -> list:
    return [r for r in emulator.requests("/backend-api/models")
            if decode_payload(r["headers"]["Authorization"].split()[1])["sub"] == subject]


def sent_payload(emulator, text: str) -> dict:
    """The conversation body whose last message says ``text``."""
    matching = [r["json"] for r in emulator.conversations() if r["json"]["messages"][-1]["content"]["parts"] == [text]]
    assert len(matching) == 1
    return matching[0]


def ask(proxy, model: str, api_key: str = "rt-models", **kwargs) -> tuple:
    text = f"models {uuid.uuid4().hex}"
    reply = proxy.client(api_key).chat.completions.create(model=model, messages=[{"role": "user", "content": text}],
                                                          **kwargs)
    return reply, text


# --- reasoning_effort -> thinking_effort (+ the reason hint on auto) ---

@pytest.mark.parametrize("effort,word", [
    ("none", "standard"), ("minimal", "standard"), ("low", "standard"), ("medium", "extended"),
    ("high", "max"), ("xhigh", "max"), ("extended", "extended"),
])
def test_reasoning_effort_reaches_the_upstream_in_its_words(proxy, emulator, effort, word):
    reply, text = ask(proxy, "gpt-5-thinking", reasoning_effort=effort)
    assert reply.choices[0].message.content == f"Echo: {text}"
    payload = sent_payload(emulator, text)
    assert payload["model"] == "gpt-5-thinking" and payload["thinking_effort"] == word
    assert "reasoning_effort" not in payload and "system_hints" not in payload


def test_thinking_variants_sent_as_auto_carry_the_reason_hint(proxy, emulator):
    _, text = ask(proxy, "gpt-5-6-thinking")
    payload = sent_payload(emulator, text)
    assert (payload["model"], payload["system_hints"]) == ("auto", ["reason"]) and "thinking_effort" not in payload
    _, text = ask(proxy, "gpt-5-6-t-mini", reasoning_effort="medium")
    payload = sent_payload(emulator, text)
    assert (payload["model"], payload["system_hints"], payload["thinking_effort"]) == ("auto", ["reason"], "extended")


def test_auto_thinks_only_when_asked_to(proxy, emulator):
    _, text = ask(proxy, "auto")
    payload = sent_payload(emulator, text)
    assert payload["model"] == "auto" and "system_hints" not in payload and "thinking_effort" not in payload
    _, text = ask(proxy, "auto", reasoning_effort="low")
    assert "system_hints" not in sent_payload(emulator, text)
    _, text = ask(proxy, "auto", reasoning_effort="high")
    payload = sent_payload(emulator, text)
    assert (payload["system_hints"], payload["thinking_effort"]) == (["reason"], "max")


def test_a_model_that_cannot_think_ignores_the_effort(proxy, emulator):
    _, text = ask(proxy, "gpt-4o", reasoning_effort="high")
    payload = sent_payload(emulator, text)
    assert payload["model"] == "gpt-4o" and "thinking_effort" not in payload and "system_hints" not in payload


@pytest.mark.parametrize("effort", ["extreme", "HIGHEST", 3, ""])
def test_an_invalid_effort_is_a_400_and_nothing_is_sent(proxy, emulator, effort):
    before = len(emulator.conversations())
    with pytest.raises(openai.BadRequestError) as info:
        proxy.client().chat.completions.create(model="gpt-5", messages=HELLO, reasoning_effort=effort)
    assert info.value.status_code == 400 and info.value.body["param"] == "reasoning_effort"
    assert info.value.body["type"] == "invalid_request_error"
    assert len(emulator.conversations()) == before


# --- names ---

@pytest.mark.parametrize("model,slug", [
    ("gpt-5.2", "gpt-5-2"), ("gpt-5-2", "gpt-5-2"), ("gpt-4.1", "gpt-4-1"), ("gpt-4-1", "gpt-4-1"),
    ("gpt-5", "gpt-5"), ("gpt-5-pro", "gpt-5-pro"), ("gpt-5-mini", "gpt-5-mini"), ("o3", "o3"),
    ("o4-mini", "o4-mini"), ("o4-mini-high", "o4-mini-high"), ("gpt-4o-mini", "gpt-4o-mini"),
])
def test_todays_names_and_their_slugs(proxy, emulator, model, slug):
    reply, text = ask(proxy, model)
    assert reply.model == model
    assert sent_payload(emulator, text)["model"] == slug


def test_operator_models_from_config(start_proxy, emulator):
    table = {"deep-thinker": {"slug": "auto", "hints": ["reason"], "thinking": True, "thinking_effort": "extended",
                              "aliases": ["thinker"]},
             "gpt-5": {"thinking_effort": "max"}}  # a built-in entry, one field changed
    configured = start_proxy({"MODELS": json.dumps(table)})
    key = fresh_key("operator")
    set_account_models(emulator, key, models=["gpt-5"])  # the operator's own names are listed anyway
    assert {"deep-thinker", "thinker", "gpt-5"} <= {m.id for m in configured.client(key).models.list()}
    _, text = ask(configured, "thinker", key)
    payload = sent_payload(emulator, text)
    assert (payload["model"], payload["system_hints"], payload["thinking_effort"]) == ("auto", ["reason"], "extended")
    _, text = ask(configured, "gpt-5", key)
    assert sent_payload(emulator, text)["thinking_effort"] == "max"
    _, text = ask(configured, "gpt-5", key, reasoning_effort="low")  # the client's word wins over the default
    assert sent_payload(emulator, text)["thinking_effort"] == "standard"


# --- discovery ---

def test_models_list_is_what_the_account_can_use(proxy, emulator, redis_server):
    key = fresh_key("list")
    set_account_models(emulator, key, models=["gpt-4o", "gpt-5-2", "gpt-5-7-preview", {"id": "research-x"},
                                              {"model": {"slug": "nested-y"}}, "../bad slug"])
    client = proxy.client(key)
    ids = [m.id for m in client.models.list()]
    assert {"gpt-4o", "gpt-5-2", "auto", "gpt-5-6-thinking", "gpt-5-7-preview", "research-x", "nested-y",
            "dall-e-3"} <= set(ids)
    assert not {"gpt-5-pro", "o3", "gpt-3.5-turbo", "gpt-4-s", "../bad slug"} & set(ids)
    assert len(ids) == len(set(ids))
    assert client.models.retrieve("gpt-5-7-preview").id == "gpt-5-7-preview"
    # fetched once, then shared: a second listing and a chat on the listed slug ask nothing more
    client.models.list()
    ask(proxy, "gpt-5-7-preview", key)
    assert len(model_list_calls(emulator, key)) == 1
    call = model_list_calls(emulator, key)[0]
    assert call["query"] == {"history_and_training_disabled": "false"}
    # in Redis under the account's fingerprint (never the token), for 10 minutes
    account = account_fingerprint(mint_access_token(key, 60), None, key)
    entry = redis_server.command("GET", f"b2a:models:{account}").decode()
    assert "gpt-5-7-preview" in entry and "research-x" in entry
    ttl = int(redis_server.command("TTL", f"b2a:models:{account}").decode().strip(":\r\n"))
    assert 590 <= ttl <= 600
    assert key.encode() not in redis_server.command("KEYS", "b2a:models:*")


def test_a_model_only_the_upstream_lists_is_passed_through(proxy, emulator):
    key = fresh_key("pass")
    set_account_models(emulator, key, models=["gpt-4o", "gpt-5-7-preview"])
    reply, text = ask(proxy, "gpt-5-7-preview", key, reasoning_effort="high")
    assert reply.model == "gpt-5-7-preview" and reply.choices[0].message.content == f"Echo: {text}"
    payload = sent_payload(emulator, text)
    assert payload["model"] == "gpt-5-7-preview" and payload["thinking_effort"] == "max"
    _, text = ask(proxy, "gpt-5.7-preview", key)  # dotted spelling, the upstream's slug sent
    assert sent_payload(emulator, text)["model"] == "gpt-5-7-preview"


def test_an_upstream_only_model_streams_as_nextchat_reads_it(proxy, emulator):
    key = fresh_key("sse")
    set_account_models(emulator, key, models=["gpt-5-7-preview"])
    text = f"raw {uuid.uuid4().hex}"
    response = requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                             json={"model": "gpt-5-7-preview", "stream": True, "reasoning_effort": "medium",
                                   "messages": [{"role": "user", "content": text}]}, stream=True, timeout=30)
    assert response.status_code == 200
    data = [line[5:].strip() for line in response.iter_lines(decode_unicode=True) if line.startswith("data:")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == f"Echo: {text}"
    assert {c["model"] for c in chunks} == {"gpt-5-7-preview"}
    assert sent_payload(emulator, text)["thinking_effort"] == "extended"


def test_with_api_keys_the_pool_account_is_listed_and_used(start_proxy, emulator):
    pool_key, api_key = fresh_key("pool"), "sk-models-" + uuid.uuid4().hex
    set_account_models(emulator, pool_key, models=["gpt-4o", "gpt-5-7-preview"])
    pooled = start_proxy({"API_KEYS": api_key, "TOKEN_POOL": pool_key})
    ids = {m.id for m in pooled.client(api_key).models.list()}
    assert "gpt-5-7-preview" in ids and "gpt-5-pro" not in ids
    _, text = ask(pooled, "gpt-5-7-preview", api_key)
    assert sent_payload(emulator, text)["model"] == "gpt-5-7-preview"
    with pytest.raises(openai.AuthenticationError):
        pooled.client("sk-wrong").models.list()


def test_with_a_pool_whose_first_token_is_dead_the_first_live_account_is_listed(start_proxy, emulator):
    dead, live, api_key = "bad-pool-" + uuid.uuid4().hex, fresh_key("pool-live"), "sk-models-" + uuid.uuid4().hex
    set_account_models(emulator, live, models=["gpt-4o", "gpt-5-7-preview"])
    pooled = start_proxy({"API_KEYS": api_key, "TOKEN_POOL": f"{dead},{live}"})
    for _ in range(2):  # whichever token the rotation starts at, the dead one is tried and marked dead
        ask(pooled, "gpt-4o", api_key)
    ids = {m.id for m in pooled.client(api_key).models.list()}
    assert "gpt-5-7-preview" in ids and "gpt-5-pro" not in ids  # the live account's list, not the table


def test_a_name_neither_knows_is_404(proxy, emulator):
    key = fresh_key("unknown")
    set_account_models(emulator, key, models=["gpt-4o", "gpt-5-7-preview"])
    before = len(emulator.conversations())
    for client in (proxy.client(key), proxy.client(key)):  # the second from the cached list
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model="gpt-9-imaginary", messages=HELLO)
        assert info.value.body["code"] == "model_not_found" and info.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        proxy.client(key).models.retrieve("gpt-9-imaginary")
    assert len(emulator.conversations()) == before and len(model_list_calls(emulator, key)) == 1


def test_concurrent_first_requests_fetch_the_list_once(proxy, emulator):
    key = fresh_key("once")
    set_account_models(emulator, key, models=["gpt-5-7-preview"], delay=0.5)
    with ThreadPoolExecutor(8) as pool:
        listed = list(pool.map(lambda _: {m.id for m in proxy.client(key).models.list()}, range(8)))
    assert all("gpt-5-7-preview" in ids for ids in listed)
    assert len(model_list_calls(emulator, key)) == 1  # two workers, one fetch: the store lock


@pytest.mark.parametrize("failure", [{"status": 500}, {"status": 401}, {"delay": 4.5}])
def test_a_failed_discovery_never_fails_a_chat(proxy, emulator, failure):
    key = fresh_key("fail")
    set_account_models(emulator, key, models=["gpt-5-7-preview"], **failure)
    started = time.monotonic()
    with pytest.raises(openai.NotFoundError):  # only the list knows this name: without it, the table answers
        proxy.client(key).chat.completions.create(model="gpt-5-7-preview", messages=HELLO)
    assert time.monotonic() - started < 4.2  # the fetch waits FETCH_TIMEOUT (3 s) at most
    reply, text = ask(proxy, "gpt-5", key)
    assert reply.choices[0].message.content == f"Echo: {text}"
    ids = {m.id for m in proxy.client(key).models.list()}
    assert {"gpt-5", "gpt-5-pro", "o3", "gpt-3.5-turbo"} <= ids and "gpt-5-7-preview" not in ids
    assert len(model_list_calls(emulator, key)) == 1  # the failure is remembered, not retried per request
    account = account_fingerprint(mint_access_token(key, 60), None, key)
    assert proxy.output().count(f"model list of account {account} failed") == 1  # stderr: once


def test_items_without_a_slug_are_skipped(proxy, emulator):
    key = fresh_key("shape")
    set_account_models(emulator, key, models=[{"title": "no slug here"}, 42, None])
    ids = {m.id for m in proxy.client(key).models.list()}
    assert "auto" in ids and "gpt-5" not in ids  # an empty list: only what every account has


def test_listing_without_a_token_is_the_table(proxy):
    body = requests.get(proxy.url + "/v1/models", timeout=10).json()
    ids = {item["id"] for item in body["data"]}
    assert {"gpt-3.5-turbo", "gpt-5", "gpt-5-6-thinking", "gpt-4.1", "o4-mini-high", "dall-e-3"} <= ids
    assert all(item["object"] == "model" and isinstance(item["created"], int) for item in body["data"])
