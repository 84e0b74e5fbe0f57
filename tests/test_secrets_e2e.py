"""Secrets: tokens and keys never reach the logs in full or an error body; Redis with a password;
nothing but the API and the generated files is served."""
from __future__ import annotations

import base64
import io
import shutil
import subprocess
import uuid

import pytest
import requests
from PIL import Image

from tests.emulator.tokens import mint_access_token

from .conftest import directive, free_port, stop, wait_until


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
