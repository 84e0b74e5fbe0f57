"""The service's own API keys and its token pool: round-robin, dead and cooling tokens skipped,
fail-over before the first byte."""
from __future__ import annotations

import uuid
from collections import Counter

import openai
import pytest
import requests

from tests.emulator.tokens import mint_access_token

from .conftest import directive

API_KEY = "sk-b2a-" + uuid.uuid4().hex


def subject(conversation: dict) -> str:
    from tests.emulator.tokens import decode_payload

    return decode_payload(conversation["headers"]["Authorization"].split()[1])["sub"]


@pytest.fixture(scope="module")
def pool():
    return ["rt-pool-a-" + uuid.uuid4().hex, "rt-pool-b-" + uuid.uuid4().hex, "rt-pool-c-" + uuid.uuid4().hex]


@pytest.fixture(scope="module")
def pooled(start_proxy, pool):
    return start_proxy({"API_KEYS": f"sk-other,{API_KEY}", "TOKEN_POOL": ",".join(pool)})


def test_wrong_or_missing_key_is_401(pooled, pool):
    for key in ("sk-wrong", pool[0], ""):
        with pytest.raises(openai.AuthenticationError):
            pooled.client(key or "x").chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert requests.get(pooled.url + "/v1/models", timeout=5).status_code == 401
    assert requests.get(pooled.url + "/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5).ok
    assert requests.get(pooled.url + "/dashboard/billing/usage", timeout=5).status_code == 401
    assert requests.get(pooled.url + "/dashboard/billing/usage", headers={"Authorization": f"Bearer {API_KEY}"},
                        timeout=5).ok


def test_requests_rotate_through_the_pool(pooled, pool, emulator):
    client = pooled.client(API_KEY)
    for _ in range(6):
        assert client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}]) \
            .choices[0].message.content == "Echo: hi"
    used = Counter(subject(c) for c in emulator.conversations()[-6:])
    assert set(used) == set(pool) and set(used.values()) == {2}


def test_fail_over_to_the_next_token_before_the_first_byte(start_proxy, emulator):
    dead, good = "bad-pool-" + uuid.uuid4().hex, "rt-pool-good-" + uuid.uuid4().hex
    proxy = start_proxy({"API_KEYS": API_KEY, "TOKEN_POOL": f"{dead},{good}"})
    for _ in range(3):
        chunks = list(proxy.client(API_KEY).chat.completions.create(
            model="gpt-4o", stream=True, messages=[{"role": "user", "content": directive(text="still here")}]))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "still here"
    # the dead token was tried at most once: its refusal marked it dead for everyone
    tried_dead = [r for r in emulator.requests("/applelogin") if r["form"].get("refresh_token") == dead]
    assert len(tried_dead) == 1


def test_a_cooling_token_is_skipped(start_proxy, emulator):
    first, second = "rt-pool-cap-" + uuid.uuid4().hex, "rt-pool-free-" + uuid.uuid4().hex
    proxy = start_proxy({"API_KEYS": API_KEY, "TOKEN_POOL": f"{first},{second}"})
    cap = directive(emu="http_error", status=429, body={"detail": {"message": "cap", "code": "model_cap_exceeded",
                                                                    "clears_in": 600}})
    # Both tokens answer 429 once (each fails over to the other), then both are cooling for gpt-4o.
    with pytest.raises(openai.RateLimitError):
        proxy.client(API_KEY).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": cap}])
    before = len(emulator.conversations())
    with pytest.raises(openai.RateLimitError) as info:
        proxy.client(API_KEY).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert len(emulator.conversations()) == before and info.value.response.headers["Retry-After"]
    reply = proxy.client(API_KEY).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Echo: hi"


def test_access_tokens_and_team_accounts_in_the_pool(start_proxy, emulator):
    token = mint_access_token("pool-at-user", 3600)
    proxy = start_proxy({"API_KEYS": API_KEY, "TOKEN_POOL": f"{token}:acct-pool"})
    proxy.client(API_KEY).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    last = emulator.conversations()[-1]["headers"]
    assert last["Authorization"] == f"Bearer {token}" and last.get("Chatgpt-Account-Id") == "acct-pool"


def test_a_pool_of_dead_tokens_is_503_never_401(start_proxy):
    proxy = start_proxy({"API_KEYS": API_KEY, "TOKEN_POOL": f"bad-a-{uuid.uuid4().hex},bad-b-{uuid.uuid4().hex}"})
    response = requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                             json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    # the client's key is fine: a 401 would make one-api disable the channel
    assert response.status_code == 503 and response.json()["error"]["code"] == "pool_exhausted"


def test_a_turn_the_upstream_accepted_is_never_posted_again_with_another_token(start_proxy, emulator):
    """The upstream answered 200 and then failed before any text (an error frame): the turn is in
    that account's history, so the pool must not post it again with the next token (the old code
    did: one POST per pool token). The client gets the 502."""
    first, second = "rt-pool-x-" + uuid.uuid4().hex, "rt-pool-y-" + uuid.uuid4().hex
    proxy = start_proxy({"API_KEYS": API_KEY, "TOKEN_POOL": f"{first},{second}"})
    marker = uuid.uuid4().hex
    before = len(emulator.conversations())
    with pytest.raises(openai.APIStatusError) as raised:
        proxy.client(API_KEY).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": directive(
                emu="error_midstream", after_chunks=0, error=f"boom {marker}")}])
    assert raised.value.status_code == 502
    assert len(emulator.conversations()) - before == 1


def test_a_turn_the_upstream_refused_fails_over_to_the_next_token(start_proxy, emulator):
    """A refusal by HTTP status created nothing upstream: the next token is tried (both are refused
    here, so each is tried once and the last refusal is the answer)."""
    first, second = "rt-pool-x-" + uuid.uuid4().hex, "rt-pool-y-" + uuid.uuid4().hex
    proxy = start_proxy({"API_KEYS": API_KEY, "TOKEN_POOL": f"{first},{second}"})
    before = len(emulator.conversations())
    text = directive(emu="http_error", status=503)
    with pytest.raises(openai.APIStatusError) as raised:
        proxy.client(API_KEY).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": text}])
    # every token was refused by status: each was tried once, and nothing was accepted twice
    assert raised.value.status_code == 502 and "HTTP 503" in raised.value.message
    assert len(emulator.conversations()) - before == 2
