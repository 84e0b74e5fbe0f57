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
