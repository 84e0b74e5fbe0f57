"""GET /metrics: Prometheus counters that add up across gunicorn workers."""
from __future__ import annotations

import re
import time
import uuid

import requests

from .conftest import directive


def scrape(proxy) -> str:
    return requests.get(proxy.url + "/metrics", timeout=5).text


def value(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{val}"' in line for key, val in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def chat(proxy, content: str, api_key: str, model: str = "gpt-4o", stream: bool = False):
    return requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"},
                         json={"model": model, "messages": [{"role": "user", "content": content}], "stream": stream},
                         timeout=30, stream=stream)


def test_counters_add_up_across_workers(start_proxy):
    proxy = start_proxy({"PROCESS_WORKERS": "2"})
    key = "rt-metrics-" + uuid.uuid4().hex
    for _ in range(12):
        assert chat(proxy, "hi", key).status_code == 200
    chat(proxy, "hi", key, model="no-such-model")
    chat(proxy, directive(emu="http_error", status=500, body="x", content_type="text/plain"), key)
    time.sleep(0.3)
    for _ in range(4):  # whichever worker answers, it reports the whole instance
        text = scrape(proxy)
        assert value(text, "b2a_requests_total", route="/v1/chat/completions", model="gpt-4o", status="200") == 12
        assert value(text, "b2a_requests_total", model="other", status="404") == 1
        assert value(text, "b2a_token_refreshes_total", outcome="ok") == 1
        assert value(text, "b2a_token_cache_hits_total") >= 12
        assert value(text, "b2a_upstream_errors_total", kind="upstream_error") == 1
        assert value(text, "b2a_upstream_first_event_seconds_count") == 12
    assert re.search(r"^# TYPE b2a_active_streams gauge", text, re.M)


def test_active_streams_gauge(start_proxy):
    proxy = start_proxy({"PROCESS_WORKERS": "2"})
    response = chat(proxy, directive(emu="hang", text="abcdefghijkl", after_chunks=2, hang=5), "rt-gauge", stream=True)
    for line in response.iter_lines():
        if b'"content":"def' in line:
            break
    assert value(scrape(proxy), "b2a_active_streams") == 1
    response.close()
    deadline = time.monotonic() + 5
    while value(scrape(proxy), "b2a_active_streams") != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert value(scrape(proxy), "b2a_active_streams") == 0


def series(text: str, name: str) -> set:
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line.startswith(name + "{")}


def test_label_values_come_from_a_fixed_set(start_proxy):
    """Upstream error codes and model names are whatever the upstream and clients send: 30 new
    ones must not make 30 new time series."""
    proxy = start_proxy({"PROCESS_WORKERS": "1"})
    key = "rt-labels-" + uuid.uuid4().hex
    for index in range(15):
        code = f"upstream_code_{uuid.uuid4().hex[:8]}"
        assert chat(proxy, directive(emu="http_error", status=500, body={"detail": {"code": code, "message": "no"}}),
                    key).json()["error"]["code"] == code  # the client still sees the upstream's code
        assert chat(proxy, "hi", key, model=f"model-{uuid.uuid4().hex[:8]}").status_code == 404
    assert chat(proxy, directive(emu="http_error", status=500, body="x", content_type="text/plain"), key).status_code == 502
    text = scrape(proxy)
    assert series(text, "b2a_upstream_errors_total") == {'b2a_upstream_errors_total{kind="other"}',
                                                         'b2a_upstream_errors_total{kind="upstream_error"}'}
    assert value(text, "b2a_upstream_errors_total", kind="other") == 15
    chats = {line for line in series(text, "b2a_requests_total") if "/v1/chat/completions" in line}
    assert chats == {'b2a_requests_total{model="other",route="/v1/chat/completions",status="404"}',
                     'b2a_requests_total{model="gpt-4o",route="/v1/chat/completions",status="502"}'}, chats
