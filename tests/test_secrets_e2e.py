"""Secrets: tokens and keys never reach the logs in full or an error body; Redis with a password;
nothing but the API and the generated files is served."""
from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest
import requests
from PIL import Image

from tests.emulator.tokens import mint_access_token

from .conftest import ROOT, directive, free_port, stop, wait_until


def chat(proxy, api_key: str, content="hi", stream: bool = False, model: str = "gpt-4o"):
    return requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"},
                         json={"model": model, "messages": [{"role": "user", "content": content}], "stream": stream},
                         timeout=30)


def png_data_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_no_secret_in_any_log_or_error_after_a_full_run(start_proxy, emulator):
    api_key = "sk-secret-" + uuid.uuid4().hex
    pool_token = "rt-secret-pool-" + uuid.uuid4().hex
    gpts_key = "rt-secret-gpts-" + uuid.uuid4().hex
    proxy = start_proxy({"LOG_LEVEL": "DEBUG", "NEED_LOG_TO_FILE": "true", "KEY_FOR_GPTS_INFO": gpts_key})
    pooled = start_proxy({"LOG_LEVEL": "DEBUG", "API_KEYS": api_key, "TOKEN_POOL": pool_token})
    refresh_token = "rt-secret-" + uuid.uuid4().hex
    access_token = mint_access_token("secret-user", 3600)
    bad = "bad-secret-" + uuid.uuid4().hex
    bodies = [
        chat(proxy, refresh_token), chat(proxy, refresh_token, directive(text="streamed"), stream=True),
        chat(proxy, access_token), chat(proxy, f"{refresh_token},acct-secret"), chat(proxy, bad),
        chat(proxy, refresh_token, [{"type": "text", "text": "look"},
                                    {"type": "image_url", "image_url": {"url": png_data_uri()}}]),
        chat(proxy, refresh_token, directive(emu="http_error", status=401, body={"detail": "expired"})),
        chat(proxy, refresh_token, model=f"gpt-4-gizmo-g-{uuid.uuid4().hex[:8]}"),
        chat(pooled, api_key), chat(pooled, "sk-wrong-" + api_key[-8:]),
    ]
    issued = {c["headers"]["Authorization"][7:] for c in emulator.conversations()[-12:]}
    secrets = {api_key, pool_token, gpts_key, refresh_token, access_token, bad} | issued
    logs = proxy.logs() + pooled.logs()
    answers = "".join(response.text for response in bodies)
    for secret in secrets:
        assert secret not in logs, f"a secret ({secret[:6]}...) is in the logs"
        assert secret not in answers, f"a secret ({secret[:6]}...) is echoed in a response"
    assert "model=gpt-4o status=200" in logs


def raw_exchange(proxy, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(data)
        return sock.recv(65536)


def test_gunicorn_logs_scrub_tokens_too(start_proxy):
    """gunicorn logs what it cannot parse, whole, through loggers of its own (not our handlers)."""
    proxy = start_proxy({"NEED_LOG_TO_FILE": "true", "PROCESS_WORKERS": "1"})
    jwt = mint_access_token("gunicorn-log-user", 3600)
    refresh_token = "rt-" + uuid.uuid4().hex + uuid.uuid4().hex
    bad_line = f"GET /v1/models?key={jwt}&refresh_token={refresh_token}\r\nHost: x\r\n\r\n"  # no HTTP version
    bad_header = f"GET /v1/models HTTP/1.1\r\nHost: x\r\nBearer {jwt} {refresh_token}\r\n\r\n"
    for request in (bad_line, bad_header):
        assert raw_exchange(proxy, request.encode()).startswith(b"HTTP/1.1 400")
    assert requests.get(f"{proxy.url}/v1/{jwt}/{refresh_token}?key={jwt}", timeout=5).status_code == 404
    wait_until(lambda: proxy.logs().count("Invalid request from ip=") == 2 and "/v1/[redacted]" in proxy.logs(),
               timeout=5, what="gunicorn's and our log lines")
    logs = proxy.logs()
    assert jwt not in logs and refresh_token not in logs
    assert logs.count("[redacted]") >= 5, logs[-3000:]


def test_gunicorns_access_log_is_scrubbed_when_turned_on(emulator, redis_server, tmp_path):
    """We write our own access line; an operator who turns gunicorn's on gets its request lines,
    query strings included, scrubbed the same way."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "UPSTREAM_BASE_URL": emulator.url,
           "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port), "LOG_DIR": str(tmp_path),
           "PROCESS_WORKERS": "1", "REFRESH_TOACCESS_DAILY_REFRESH": "false"}
    out_path = tmp_path / "out.txt"
    with open(out_path, "wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "main:app", "--access-logfile", "-"], cwd=ROOT,
                                   env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(url + "/healthz", timeout=1).ok, what="gunicorn main:app")
        jwt = mint_access_token("gunicorn-access-user", 3600)
        short_key = "sk-" + uuid.uuid4().hex[:12]
        requests.get(f"{url}/v1/models?key={jwt}&api_key={short_key}", headers={"Authorization": f"Bearer {jwt}"},
                     timeout=5)
        wait_until(lambda: "GET /v1/models?" in out_path.read_text(), timeout=5, what="gunicorn's access line")
        output_text = out_path.read_text()
        assert jwt not in output_text and short_key not in output_text
        assert "GET /v1/models?key=[redacted]&api_key=[redacted]" in output_text
    finally:
        stop(process)


@pytest.fixture
def password_redis(tmp_path):
    port = free_port()
    process = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--requirepass", "s3cret-pass",
                                "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: subprocess.run(["redis-cli", "-p", str(port), "-a", "s3cret-pass", "--no-auth-warning", "ping"],
                                      capture_output=True, text=True).stdout.strip() == "PONG", what="redis")
    yield port
    stop(process)


def test_redis_password(start_proxy, password_redis):
    proxy = start_proxy({"REDIS_PORT": str(password_redis), "REDIS_PASSWORD": "s3cret-pass"})
    assert requests.get(proxy.url + "/readyz", timeout=5).json()["store"] == "redis"
    assert chat(proxy, "rt-pw-" + uuid.uuid4().hex).status_code == 200
    wrong = start_proxy({"REDIS_PORT": str(password_redis), "REDIS_PASSWORD": "nope", "PROCESS_WORKERS": "1"})
    assert requests.get(wrong.url + "/readyz", timeout=5).json()["store"] == "memory"
    assert "s3cret-pass" not in proxy.logs()


@pytest.mark.parametrize("path", [
    "/config.json", "/gpts.json", "/main.py", "/.env", "/backend_to_api/settings.py", "/log/access.log",
    "/images/../config.json", "/files/..%2Fconfig.json", "/static/config.json", "/images/", "/redis-data/dump.rdb",
])
def test_nothing_else_is_served(proxy, path):
    response = requests.get(proxy.url + path, timeout=5)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
