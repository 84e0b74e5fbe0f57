"""The emulated upstream checked over real HTTP, as a separate process like the suite uses it."""
from __future__ import annotations

import json
import select
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.emulator.tokens import decode_payload, mint_access_token

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def emulator_process_url():
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.emulator", "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            yield _wait_for_address(process, errors)
        finally:
            process.terminate()
            process.wait(timeout=15)


def _wait_for_address(process: subprocess.Popen, errors) -> str:
    ready, _, _ = select.select([process.stdout], [], [], 15)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("emulator listening on "):
        errors.seek(0)
        pytest.fail(f"emulator did not start: {line!r} {errors.read().decode(errors='replace')}")
    return line.split()[-1]


@pytest.fixture
def url(emulator_process_url):
    """The emulator's address, its records and config reset (named apart from conftest's)."""
    requests.post(f"{emulator_process_url}/_emulator/reset", timeout=15).raise_for_status()
    return emulator_process_url


def _access_token(base_url: str, refresh_token: str = "rt-selftest") -> str:
    answer = requests.post(f"{base_url}/applelogin", data={"refresh_token": refresh_token},
                           timeout=15)
    answer.raise_for_status()
    return answer.json()["access_token"]


def _converse(base_url: str, text: str | dict, token: str | None = None) -> requests.Response:
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    payload = {"action": "next", "model": "gpt-4o", "parent_message_id": str(uuid.uuid4()),
               "messages": [{"id": str(uuid.uuid4()), "author": {"role": "user"},
                             "content": {"content_type": "text", "parts": [text]}}]}
    token = token or _access_token(base_url)
    return requests.post(f"{base_url}/backend-api/conversation", json=payload, stream=True,
                         headers={"Authorization": f"Bearer {token}"}, timeout=15)


def _events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) of each SSE frame."""
    events = []
    for block in raw.decode("utf-8").replace("\r\n", "\n").split("\n\n"):
        lines = block.split("\n")
        name = next((line[7:] for line in lines if line.startswith("event: ")), None)
        data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
        if block:
            events.append((name, data))
    return events


def _cumulative_messages(events) -> dict[str, dict]:
    messages = {}
    for name, data in events:
        if name is None and data.startswith('{"message": {'):
            message = json.loads(data)["message"]
            messages[message["id"]] = message
    return messages


def _v1_messages(events) -> dict[str, dict]:
    """Replays the delta operations, just enough of them for the emulator's streams."""
    messages, current, last = {}, None, None
    for name, data in (event for event in events if event[0] == "delta"):
        operation = json.loads(data)
        if "p" not in operation:
            operation = {"p": last[0], "o": last[1], "v": operation["v"]}
        last = (operation["p"], operation["o"])
        for step in operation["v"] if operation["o"] == "patch" else [operation]:
            if step["o"] == "add":
                current = step["v"]["message"]
                messages[current["id"]] = current
            else:
                _apply(current, step)
    return messages


def _apply(message: dict, step: dict) -> None:
    *path, key = step["p"].split("/")[2:]  # "/message/content/parts/0"
    target = message
    for part in path:
        target = target[int(part)] if isinstance(target, list) else target[part]
    key = int(key) if isinstance(target, list) else key
    if step["o"] == "replace":
        target[key] = step["v"]
    elif isinstance(target[key], dict):
        target[key].update(step["v"])
    else:
        target[key] += step["v"]


def test_echo_streams_cumulative_text_as_raw_utf8(url):
    reply = _converse(url, "你好 😀")
    raw = reply.content
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    assert "Echo: 你好 😀".encode() in raw
    events = _events(raw)
    assert events[0] == ("ping", "{}") and events[-1] == (None, "[DONE]")
    final = list(_cumulative_messages(events).values())[-1]
    assert final["content"]["parts"] == ["Echo: 你好 😀"]
    assert final["end_turn"] is True and final["metadata"]["finish_details"] == {"type": "stop"}


def test_v1_tools_rebuild_to_four_messages(url):
    reply = _converse(url, {"emu": "tools", "encoding": "v1", "text": "Running.",
                                 "code": "print(2)", "output": "2\n", "after": "Done: 2."})
    events = _events(reply.content)
    assert events[0] == ("delta_encoding", '"v1"')
    roles = [(m["author"]["role"], m["recipient"], m["content"]["content_type"])
             for m in _v1_messages(events).values()]
    assert roles == [("user", "all", "text"), ("assistant", "all", "text"),
                     ("assistant", "python", "code"), ("tool", "all", "execution_output"),
                     ("assistant", "all", "text")]
    final = list(_v1_messages(events).values())[-1]
    assert final["content"]["parts"] == ["Done: 2."] and final["status"] == "finished_successfully"


def test_fragments_split_characters_across_chunks(url):
    reply = _converse(url, {"emu": "text", "text": "流式😀", "fragment": 3, "crlf": True})
    chunks = list(reply.raw.read_chunked())
    assert max(len(chunk) for chunk in chunks) == 3
    raw = b"".join(chunks)
    assert b"\r\n\r\n" in raw
    final = list(_cumulative_messages(_events(raw)).values())[-1]
    assert final["content"]["parts"] == ["流式😀"]


def test_drop_breaks_the_client_read(url):
    reply = _converse(url, {"emu": "drop", "after_chunks": 1})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for _ in reply.iter_content(None):
            pass
    time.sleep(0.1)
    assert requests.get(f"{url}/_emulator/streams", timeout=15).json()[-1]["outcome"] == "dropped"


def test_client_leaving_a_hang_is_recorded(url):
    reply = _converse(url, {"emu": "hang", "hang": 10, "after_chunks": 1})
    next(reply.iter_content(None))
    reply.close()
    closed_at = time.time()
    for _ in range(30):
        record = requests.get(f"{url}/_emulator/streams", timeout=15).json()[-1]
        if record["ended"]:
            break
        time.sleep(0.1)
    assert record["closed_early"] is True
    assert record["ended"] - closed_at < 1.5


def test_http_error_answers_before_any_stream(url):
    body = {"detail": {"message": "You've reached our limit of messages per hour.",
                       "code": "model_cap_exceeded", "clears_in": 120}}
    reply = _converse(url, {"emu": "http_error", "status": 429, "body": body,
                                 "headers": {"Retry-After": "5"}})
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "5"
    assert reply.json() == body


def test_tokens_expired_revoked_or_foreign_get_401(url):
    expired = mint_access_token("rt-old", -10)
    assert _converse(url, "hi", expired).json()["detail"]["code"] == "token_expired"
    token = _access_token(url)
    assert decode_payload(token)["sub"] == "rt-selftest"
    requests.post(f"{url}/_emulator/revoke", json={"access_token": token}, timeout=15)
    assert _converse(url, "hi", token).status_code == 401
    forged = token[:-1] + ("B" if token.endswith("A") else "A")
    assert _converse(url, "hi", forged).status_code == 401
    refused = requests.post(f"{url}/applelogin", data={"refresh_token": "bad-1"}, timeout=15)
    assert refused.status_code == 401


def test_requests_are_recorded_in_order(url):
    token = _access_token(url)
    requests.get(f"{url}/backend-api/models", timeout=15,
                 headers={"Authorization": f"Bearer {token}", "Chatgpt-Account-Id": "acct-1"})
    seen = requests.get(f"{url}/_emulator/requests", timeout=15).json()
    assert [(r["method"], r["path"]) for r in seen] == [("POST", "/applelogin"),
                                                        ("GET", "/backend-api/models")]
    assert seen[0]["form"] == {"refresh_token": "rt-selftest"}
    assert seen[1]["headers"]["Chatgpt-Account-Id"] == "acct-1"
