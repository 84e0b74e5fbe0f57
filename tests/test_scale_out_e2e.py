"""Two instances (separate gunicorn masters on different ports) sharing one Redis behave as one
service: tokens, GPT info, rate limits and upstream cool-downs are shared."""
from __future__ import annotations

import uuid

import pytest
import requests

from .conftest import directive, wait_until
from .test_gpts_e2e import gizmo_id, gpts_file


def chat(proxy, api_key: str, content: str = "hi", model: str = "gpt-4o"):
    return requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"},
                         json={"model": model, "messages": [{"role": "user", "content": content}]}, timeout=30)


@pytest.fixture(scope="module")
def instances(start_proxy):
    gpt = gizmo_id()
    env = {"GPTS_FILE": gpts_file({"shared-gpt": gpt}), "KEY_FOR_GPTS_INFO": "rt-scale-gpts",
           "RATE_LIMIT_PER_MINUTE": "4", "RATE_LIMIT_MAX_WAIT": "0"}
    first, second = start_proxy(env), start_proxy(env)
    return first, second, gpt


def test_a_token_refreshed_by_one_is_used_by_the_other(instances, emulator):
    first, second, _ = instances
    key = "rt-scale-" + uuid.uuid4().hex
    assert chat(first, key).status_code == 200
    assert chat(second, key).status_code == 200
    refreshes = [r for r in emulator.requests("/applelogin") if r["form"].get("refresh_token") == key]
    assert len(refreshes) == 1
    tokens = {c["headers"]["Authorization"] for c in emulator.conversations()[-2:]}
    assert len(tokens) == 1


def test_gpt_info_is_fetched_once(instances, emulator):
    first, second, gpt = instances
    path = f"/backend-api/gizmos/{gpt}"
    wait_until(lambda: emulator.requests(path), timeout=10, what="start-up GPT fetch")
    assert chat(first, "rt-scale-a-" + uuid.uuid4().hex, model="shared-gpt").status_code == 200
    assert chat(second, "rt-scale-b-" + uuid.uuid4().hex, model="shared-gpt").status_code == 200
    assert len(emulator.requests(path)) == 1


def test_rate_limit_is_shared(instances, emulator):
    first, second, _ = instances
    key = "rt-scale-limit-" + uuid.uuid4().hex
    statuses = [chat(proxy, key).status_code for proxy in (first, second, first, second)]
    assert statuses == [200] * 4
    before = len(emulator.conversations())
    refused = chat(second, key)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(emulator.conversations()) == before  # refused before spending an upstream call


def test_upstream_cool_down_is_shared(instances, emulator):
    first, second, _ = instances
    key = "rt-scale-cap-" + uuid.uuid4().hex
    cap = directive(emu="http_error", status=429, body={"detail": {
        "message": "You've reached our limit of messages per hour.", "code": "model_cap_exceeded", "clears_in": 900}})
    assert chat(first, key, cap).status_code == 429
    before = len(emulator.conversations())
    again = chat(second, key, "hi")
    assert again.status_code == 429 and 890 <= int(again.headers["Retry-After"]) <= 900
    assert len(emulator.conversations()) == before
    assert chat(second, key, "hi", model="gpt-4o-mini").status_code == 200  # other models are open
