"""Upstream failures before and during the stream, silences, and clients that go away."""
from __future__ import annotations

import json
import socket
import time
import uuid

import openai
import pytest
import requests

from .conftest import directive


def ask(proxy, content: str, stream: bool = False, api_key: str = "", model: str = "gpt-4o"):
    # A fresh key per call: an upstream 429 cools its key down for the rest of the session.
    api_key = api_key or "rt-failures-" + uuid.uuid4().hex
    return requests.post(
        proxy.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"},
        json={"model": model, "messages": [{"role": "user", "content": content}], "stream": stream},
        timeout=30, stream=stream,
    )


def test_model_cap_is_429_with_retry_after(proxy):
    body = {"detail": {"message": "You've reached our limit of messages per hour.", "code": "model_cap_exceeded",
                       "clears_in": 11461}}
    response = ask(proxy, directive(emu="http_error", status=429, body=body))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "11461"
    assert response.headers["x-should-retry"] == "false"
    error = response.json()["error"]
    assert error["type"] == "rate_limit_exceeded" and error["code"] == "model_cap_exceeded"
    assert "limit of messages" in error["message"]


def test_streamed_request_gets_the_http_error_too(proxy):
    response = ask(proxy, directive(emu="http_error", status=429, body={"detail": "slow down"}), stream=True)
    assert response.status_code == 429 and response.json()["error"]["message"].endswith("slow down")


@pytest.mark.parametrize("status,body,content_type,expected", [
    (403, "<html><body>Just a moment...</body></html>", "text/html", 503),
    (500, {"detail": "internal"}, "application/json", 502),
    (502, "Bad gateway", "text/plain", 502),
    (404, {"detail": "Not Found"}, "application/json", 502),
    (413, {"detail": "Message too long"}, "application/json", 400),
    (200, {"wss_url": "wss://example.invalid/x"}, "application/json", 502),  # not an event stream
])
def test_upstream_http_errors_map_to_openai_errors(proxy, status, body, content_type, expected):
    response = ask(proxy, directive(emu="http_error", status=status, body=body, content_type=content_type))
    assert response.status_code == expected
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert "<html" not in error["message"]


def test_sdk_raises_typed_errors(proxy):
    client = proxy.client("rt-typed-" + uuid.uuid4().hex)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": directive(
            emu="http_error", status=429, body={"detail": {"message": "cap", "code": "model_cap_exceeded",
                                                           "clears_in": 30}})}])
    client = proxy.client("rt-typed-" + uuid.uuid4().hex)  # the 429 above cooled the first key down
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": directive(
            emu="http_error", status=500, body="boom", content_type="text/plain")}])


def test_error_midstream_is_visible_then_raised(proxy):
    chunks = []
    with pytest.raises(openai.APIError) as info:
        for chunk in proxy.client().chat.completions.create(
                model="gpt-4o", stream=True,
                messages=[{"role": "user", "content": directive(emu="error_midstream", text="abcdefghijkl",
                                                                after_chunks=2, error="model overloaded")}]):
            chunks.append(chunk)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("abcdef") and "[error:" in text and "model overloaded" in text
    assert "model overloaded" in str(info.value)


def test_error_midstream_raw_frames_end_properly(proxy):
    response = ask(proxy, directive(emu="error_midstream", text="abcdefghijkl", after_chunks=2), stream=True)
    body = response.content.decode()
    frames = [f for f in body.split("\n\n") if f]
    assert frames[-1] == "data: [DONE]"
    assert '"finish_reason":"stop"' in frames[-2]
    assert frames[-3].startswith('data: {"error":')


def test_error_midstream_non_stream_is_502(proxy):
    response = ask(proxy, directive(emu="error_midstream", text="abcdefghijkl", after_chunks=2, error="bad"))
    assert response.status_code == 502 and "bad" in response.json()["error"]["message"]


def test_error_before_any_text_is_an_http_error(proxy):
    response = ask(proxy, directive(emu="error_midstream", text="abc", after_chunks=0, error="refused"), stream=True)
    assert response.status_code == 502 and "refused" in response.json()["error"]["message"]


def test_dropped_connection(proxy):
    response = ask(proxy, directive(emu="drop", text="abcdefghijkl", after_chunks=2), stream=True)
    body = response.content.decode()
    assert body.endswith("data: [DONE]\n\n") and 'data: {"error":' in body
    assert '"content":"abc"' in body and '"content":"def"' in body and "connection broke" in body
    response = ask(proxy, directive(emu="drop", text="abcdefghijkl", after_chunks=2))
    assert response.status_code == 502 and response.json()["error"]["code"]


def test_empty_reply_is_502_not_an_empty_200(proxy):
    for stream in (False, True):
        response = ask(proxy, directive(emu="empty"), stream=stream)
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "empty_reply"


def test_stream_that_ends_without_done_still_completes(proxy):
    chunks = list(proxy.client().chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": directive(emu="no_done", text="whole")}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "whole"


def test_keep_alive_comments_while_upstream_is_silent(proxy):
    # Events 2.5 s apart; the test proxy sends keep-alives after 1 s of silence.
    response = ask(proxy, directive(text="abcdef", chunk=3, interval=2.5), stream=True)
    body = response.content.decode()
    assert ": keep-alive\n\n" in body
    assert body.count("abc") == 1 and body.endswith("data: [DONE]\n\n")
    # and the SDK ignores them
    chunks = list(proxy.client().chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": directive(text="xyz", chunk=1, interval=1.5)}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "xyz"


def test_headers_are_sent_after_the_first_event_deadline(start_proxy):
    proxy = start_proxy({"FIRST_EVENT_TIMEOUT": "1", "KEEP_ALIVE_INTERVAL": "0.5"})
    started = time.monotonic()
    # 5 s of upstream silence: headers after ~1 s, then a keep-alive every 0.5 s (~8; a loaded CI
    # machine may lose some ticks, so only 2 are required).
    response = ask(proxy, directive(text="late", first_delay=5), stream=True)
    assert response.status_code == 200 and time.monotonic() - started < 3.5
    body = response.content.decode()
    assert body.count(": keep-alive") >= 2 and '"content":"lat' in body


def leave_a_hanging_stream(proxy, emulator) -> tuple:
    """Read the first token of a reply that then stalls (pinging) for 30 s, close the connection, and
    wait up to 8 s for the emulator to record how that stream ended. Returns (record, seconds from
    the client's close to the end of the upstream stream)."""
    asked_at = time.time()
    response = ask(proxy, directive(emu="hang", text="abcdefghijkl", after_chunks=2, hang=30), stream=True)
    for line in response.iter_lines():
        if b'"content":"abc' in line:
            break
    closed_at = time.time()
    response.close()  # an unread streamed body: urllib3 closes the socket
    record = ended_hang_stream(emulator, asked_at)
    return record, record["ended"] - closed_at


def ended_hang_stream(emulator, asked_at: float) -> dict:
    """The emulator's record of the last "hang" stream started since ``asked_at``, once it has
    ended (waiting up to 8 s for that)."""
    deadline, record = time.monotonic() + 8, None
    while time.monotonic() < deadline:
        ours = [s for s in emulator.streams() if s.get("scenario") == "hang" and s["started"] >= asked_at]
        record = ours[-1] if ours else None
        if record and record.get("ended"):
            break
        time.sleep(0.2)
    assert record and record.get("ended"), record
    return record


def test_client_disconnect_closes_the_upstream_quickly(proxy, emulator):
    record, delay = leave_a_hanging_stream(proxy, emulator)
    assert record["closed_early"] is True and delay < 3.0


def test_upstream_timeout_is_504(start_proxy):
    proxy = start_proxy({"UPSTREAM_READ_TIMEOUT": "1", "FIRST_EVENT_TIMEOUT": "10"})
    response = ask(proxy, directive(text="slow", first_delay=3))
    assert response.status_code == 504 and response.json()["error"]["code"] == "upstream_timeout"


def test_an_upstream_silent_mid_stream_ends_the_stream_with_a_timeout(start_proxy):
    proxy = start_proxy({"UPSTREAM_READ_TIMEOUT": "1.5", "KEEP_ALIVE_INTERVAL": "0.5"})
    # One event, then 4 s without a byte (no pings either): the read timeout is 1.5 s.
    response = ask(proxy, directive(text="abcdef", chunk=3, interval=4), stream=True)
    body = response.content.decode()
    assert response.status_code == 200 and '"content":"abc"' in body
    assert '"code":"upstream_timeout"' in body and body.endswith("data: [DONE]\n\n")
    assert '"content":"def"' not in body


def test_unreachable_upstream_is_502(start_proxy):
    from .conftest import free_port

    proxy = start_proxy({"UPSTREAM_BASE_URL": f"http://127.0.0.1:{free_port()}"})
    response = ask(proxy, "hi", api_key="eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.sig")
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_unreachable"


def _sse_body(text: str, done: bool, finish_details: bool) -> str:
    message = {"id": "m-loose", "author": {"role": "assistant", "name": None, "metadata": {}},
               "content": {"content_type": "text", "parts": [text]}, "status": "finished_successfully",
               "end_turn": True, "weight": 1.0, "recipient": "all",
               "metadata": {"finish_details": {"type": "stop"}} if finish_details else {}}
    import json as _json

    body = "data: " + _json.dumps({"message": message, "conversation_id": "c-loose", "error": None}) + "\n\n"
    return body + ("data: [DONE]\n\n" if done else "")


@pytest.mark.parametrize("content_type", ["", "text/plain", "text/event-stream"])
def test_loosely_labelled_streams_are_read(proxy, content_type):
    body = _sse_body("loose but fine", done=True, finish_details=True)
    response = ask(proxy, directive(emu="http_error", status=200, body=body, content_type=content_type))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "loose but fine"


def test_a_finished_answer_without_done_or_finish_details_is_complete(proxy):
    body = _sse_body("ends quietly", done=False, finish_details=False)
    response = ask(proxy, directive(emu="http_error", status=200, body=body, content_type="text/event-stream"),
                   stream=True)
    text = response.content.decode()
    assert '"content":"ends quietly"' in text and '{"error"' not in text and text.endswith("data: [DONE]\n\n")


def test_a_client_that_leaves_before_the_first_token_closes_the_upstream(start_proxy, emulator):
    # The upstream answers at once but says nothing real for 30 s (only pings), so no header has
    # gone out yet when the client leaves; the proxy must notice without waiting for the first token.
    proxy = start_proxy({"FIRST_EVENT_TIMEOUT": "20"})
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": [
        {"role": "user", "content": directive(emu="hang", text="abcdef", after_chunks=0, hang=30)}]}).encode()
    asked_at = time.time()
    with socket.create_connection(("127.0.0.1", proxy.port)) as client:
        client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rt-leaver\r\n"
                       b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(1.5)
        closed_at = time.time()
    record = ended_hang_stream(emulator, asked_at)
    assert record["closed_early"] and record["ended"] - closed_at < 2.5, record
    assert "499" in proxy.logs()
