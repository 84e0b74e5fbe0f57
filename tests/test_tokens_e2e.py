"""Bearer keys: refresh tokens exchanged once and shared through Redis, access tokens as is,
refresh on an upstream 401, the daily refresh, and no Redis at all."""
from __future__ import annotations

import concurrent.futures
import hashlib
import uuid

import openai
import pytest
import requests

from tests.emulator.tokens import mint_access_token


def chat(proxy, api_key: str, content: str = "hi", headers=None):
    return requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}", **(headers or {})},
                         json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}, timeout=30)


def refreshes(emulator, refresh_token: str, path: str = "/applelogin"):
    calls = emulator.requests(path)
    return [c for c in calls if (c.get("form") or {}).get("refresh_token") == refresh_token
            or (c.get("json") or {}).get("refresh_token") == refresh_token]


def unique(prefix: str = "rt-") -> str:
    return prefix + uuid.uuid4().hex


def test_refresh_token_is_exchanged_once_for_all_workers(proxy, emulator, redis_server):
    refresh_token = unique()
    for _ in range(6):  # two workers: several requests land on each
        assert chat(proxy, refresh_token).status_code == 200
    assert len(refreshes(emulator, refresh_token)) == 1
    used = {c["headers"].get("Authorization") for c in emulator.conversations()[-6:]}
    assert len(used) == 1 and used.pop().startswith("Bearer eyJhb")
    keys = redis_server.command("KEYS", "b2a:at:*")
    assert b"b2a:at:" in keys and refresh_token.encode() not in keys  # keys are hashed, not the token


def test_cache_ttl_follows_the_jwt_expiry(proxy, emulator, redis_server):
    emulator.configure(token_ttl=3600)
    try:
        refresh_token = unique()
        assert chat(proxy, refresh_token).status_code == 200
        key = "b2a:at:" + hashlib.sha256(refresh_token.encode()).hexdigest()[:32]
        ttl = int(redis_server.command("TTL", key).strip(b":\r\n"))
        assert 2900 < ttl <= 3000  # exp (3600 s) minus the 600 s margin
    finally:
        emulator.configure(token_ttl=864000)


def test_concurrent_first_requests_refresh_only_once(proxy, emulator):
    refresh_token = unique("slow-")
    emulator.configure(refresh_delay=1.0)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: chat(proxy, refresh_token).status_code, range(8)))
    assert statuses == [200] * 8
    assert len(refreshes(emulator, refresh_token)) == 1


def test_access_token_is_used_as_is(proxy, emulator):
    token = mint_access_token("direct-user", 3600)
    assert chat(proxy, token).status_code == 200
    assert emulator.conversations()[-1]["headers"]["Authorization"] == f"Bearer {token}"


def test_upstream_401_refreshes_once_and_retries(proxy, emulator):
    refresh_token = unique()
    assert chat(proxy, refresh_token).status_code == 200
    first_token = emulator.conversations()[-1]["headers"]["Authorization"][7:]
    emulator.revoke(first_token)
    response = chat(proxy, refresh_token)
    assert response.status_code == 200
    assert len(refreshes(emulator, refresh_token)) == 2
    assert emulator.conversations()[-1]["headers"]["Authorization"][7:] != first_token


def test_rejected_access_token_is_401(proxy, emulator):
    token = mint_access_token("revoked-user", 3600)
    emulator.revoke(token)
    response = chat(proxy, token)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("refresh_token", ["bad-" + "x" * 20, "bad200-" + "y" * 20])
def test_rejected_refresh_token_is_401_invalid_api_key(proxy, refresh_token):
    with pytest.raises(openai.AuthenticationError) as info:
        proxy.client(api_key=refresh_token).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "invalid_api_key"


def test_missing_or_malformed_key_is_401(proxy):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        response = requests.post(proxy.url + "/v1/chat/completions", headers=headers,
                                 json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, timeout=10)
        assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


def test_team_account_id_goes_upstream(proxy, emulator):
    assert chat(proxy, unique() + ",acct-123").status_code == 200
    assert emulator.conversations()[-1]["headers"].get("Chatgpt-Account-Id") == "acct-123"
    assert chat(proxy, unique(), headers={"ChatGPT-Account-ID": "acct-456"}).status_code == 200
    assert emulator.conversations()[-1]["headers"].get("Chatgpt-Account-Id") == "acct-456"


def test_openai_oauth_refresh(start_proxy, emulator):
    proxy = start_proxy({"REFRESH_TOACCESS_ENABLEOAI": "true", "REFRESH_TOACCESS_OAI_CLIENT_ID": "app_test"})
    refresh_token = unique()
    assert chat(proxy, refresh_token).status_code == 200
    calls = refreshes(emulator, refresh_token, "/oauth/token")
    assert len(calls) == 1
    assert calls[0]["json"]["client_id"] == "app_test" and calls[0]["json"]["grant_type"] == "refresh_token"


def test_without_redis_it_still_works_and_says_so_once(start_proxy, emulator):
    proxy = start_proxy({"PROCESS_WORKERS": "1"}, redis=False)
    refresh_token = unique()
    for _ in range(3):
        assert chat(proxy, refresh_token).status_code == 200
    assert len(refreshes(emulator, refresh_token)) == 1  # the in-process store caches too
    assert proxy.output().count("is not reachable: using an in-process store") == 1  # stderr
    ready = requests.get(proxy.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["store"] == "memory"


def test_tokens_never_reach_the_logs(proxy, emulator):
    refresh_token = unique("rt-secret-")
    access_token = mint_access_token("log-user", 3600)
    chat(proxy, refresh_token)
    chat(proxy, access_token)
    chat(proxy, "bad-" + refresh_token)
    issued = emulator.conversations()[-2]["headers"]["Authorization"][7:]
    logs = proxy.logs()
    for secret in (refresh_token, access_token, issued):
        assert secret not in logs
    assert "POST /v1/chat/completions model=gpt-4o status=200" in logs


def test_refresh_tokens_are_kept_in_clear_unless_turned_off(proxy, start_proxy, emulator, redis_server):
    """README "What Redis holds": by default a refresh token is kept whole (b2a:rt:<fingerprint>)
    for the daily refresh; with remember_refresh_tokens false none is written, and one kept before
    goes when its token is next refreshed."""
    def kept(refresh_token: str) -> tuple:
        name = hashlib.sha256(refresh_token.encode()).hexdigest()[:32]
        entry = redis_server.command("GET", "b2a:rt:" + name)
        indexed = redis_server.command("SISMEMBER", "b2a:rt:index", name).strip() == b":1"
        assert b"b2a:at:" + name.encode() in redis_server.command("KEYS", "b2a:at:" + name)  # cached either way
        return refresh_token.encode() in entry, indexed

    before, never = unique(), unique()
    off = start_proxy({"REFRESH_TOACCESS_REMEMBER_REFRESH_TOKENS": "false", "PROCESS_WORKERS": "1"})
    assert chat(proxy, before).status_code == 200 and chat(off, never).status_code == 200
    assert kept(before) == (True, True) and kept(never) == (False, False)
    emulator.revoke(emulator.conversations()[-2]["headers"]["Authorization"][7:])  # before's access token
    assert chat(off, before).status_code == 200 and len(refreshes(emulator, before)) == 2
    assert redis_server.command("EXISTS", "b2a:rt:" + hashlib.sha256(before.encode()).hexdigest()[:32]) == b":0\r\n"
