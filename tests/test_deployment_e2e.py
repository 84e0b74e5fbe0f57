"""Deployment-shaped behaviour: API prefix, aliases, conversation hiding, logging, offline
tiktoken, and `gunicorn main:app`."""
from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import threading
import time

import requests

from .conftest import ROOT, directive, free_port, stop, threads_of_children, wait_until


def test_api_prefix_moves_the_routes(start_proxy):
    proxy = start_proxy({"BACKEND_CONTAINER_API_PREFIX": "secret42"})
    client = proxy.client()
    client.base_url = proxy.url + "/secret42/v1"
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Echo: hi"
    assert [m.id for m in client.models.list()]
    bare = requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-x"},
                         json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
    assert bare.status_code == 404 and bare.json()["error"]["code"] == "not_found"


def test_aliases_from_config(start_proxy, emulator):
    proxy = start_proxy({"GPT_4_S_NEW_NAME": "gpt-4-s, dall-e-3 ,gpt-4", "GPT_3_5_NEW_NAME": "gpt-3.5-turbo,chatgpt"})
    client = proxy.client()
    assert {"gpt-4-s", "dall-e-3", "gpt-4", "chatgpt"} <= {m.id for m in client.models.list()}
    client.chat.completions.create(model="dall-e-3", messages=[{"role": "user", "content": "x"}])
    assert emulator.conversations()[-1]["json"]["model"] == "gpt-4"
    client.chat.completions.create(model="chatgpt", messages=[{"role": "user", "content": "x"}])
    assert emulator.conversations()[-1]["json"]["model"] == "text-davinci-002-render-sha"


def test_conversation_is_hidden_after_the_reply(start_proxy, emulator):
    proxy = start_proxy({"NEED_DELETE_CONVERSATION_AFTER_RESPONSE": "true"})
    chunks = list(proxy.client().chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": directive(text="bye")}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "bye"
    conversation = emulator.conversations()[-1]
    assert conversation["json"]["history_and_training_disabled"] is True
    conversation_id = emulator.streams()[-1]["conversation_id"]
    wait_until(lambda: any(r["method"] == "PATCH" for r in emulator.requests(f"/backend-api/conversation/{conversation_id}")),
               timeout=5, what="PATCH is_visible")
    patch = emulator.requests(f"/backend-api/conversation/{conversation_id}")[-1]
    assert patch["json"] == {"is_visible": False}


def test_slow_hides_run_on_a_few_threads_per_worker_not_one_per_chat(start_proxy, emulator):
    # gthread, one worker: 8 chats one after another while the upstream takes 3 s to answer each
    # PATCH. The hides queue for the worker's 4 hiding threads instead of holding 8 threads.
    emulator.configure(hide_delay=3.0)
    try:
        proxy = start_proxy({"NEED_DELETE_CONVERSATION_AFTER_RESPONSE": "true", "WORKER_CLASS": "gthread",
                             "PROCESS_WORKERS": "1", "PROCESS_THREADS": "1"})
        client = proxy.client(api_key="rt-hides")
        ask = dict(model="gpt-4o", messages=[{"role": "user", "content": directive(text="bye")}])
        client.chat.completions.create(**ask)  # starts the hiding threads
        time.sleep(0.5)
        idle = threads_of_children(proxy.process.pid)
        since = time.time()
        for _ in range(8):
            assert client.chat.completions.create(**ask).choices[0].message.content == "bye"
        assert threads_of_children(proxy.process.pid) <= idle
        hidden = lambda: sum(r["method"] == "PATCH" and r["time"] >= since for r in emulator.requests())  # noqa: E731
        wait_until(lambda: hidden() == 8, timeout=15, what="8 PATCH is_visible")
    finally:
        emulator.configure(hide_delay=0.0)


def test_default_keeps_history(proxy, emulator):
    proxy.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert emulator.conversations()[-1]["json"]["history_and_training_disabled"] is False


def test_access_log_file_has_one_line_per_request(start_proxy):
    proxy = start_proxy({"NEED_LOG_TO_FILE": "true", "LOG_LEVEL": "INFO"})
    proxy.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    # A stream's line is written when the server closes its body, after the last chunk.
    list(proxy.client().chat.completions.create(model="gpt-4o", stream=True,
                                                messages=[{"role": "user", "content": "x"}]))
    requests.get(proxy.url + "/v1/models", timeout=5)
    time.sleep(0.3)
    with open(os.path.join(proxy.log_dir, "access.log"), encoding="utf-8") as handle:
        lines = [line for line in handle if "backend_to_api.access" in line]
    chat_lines = [line for line in lines if "/v1/chat/completions" in line]
    assert len(chat_lines) == 2, chat_lines
    assert re.search(r"req_\w+ POST /v1/chat/completions model=gpt-4o-mini status=200 ttfb=\d+ms duration=\d+ms", chat_lines[0])
    assert re.search(r"req_\w+ POST /v1/chat/completions model=gpt-4o status=200 ttfb=\d+ms duration=\d+ms", chat_lines[1])
    assert any("GET /v1/models model=- status=200" in line for line in lines)


def test_tiktoken_counts_offline(tmp_path):
    """The shipped encodings load with no network: a proxy that refuses everything is set, and a
    tiktoken cache of the user's own (empty) is neither read nor written."""
    code = (
        "from backend_to_api.render.usage import count_text\n"
        "print(count_text('hello world', 'cl100k_base'), count_text('hello world', 'o200k_base'),"
        " count_text('你好，世界', 'o200k_base'), count_text('<|endoftext|>', 'o200k_base'))\n"
    )
    empty_cache = tmp_path / "tiktoken-cache"
    empty_cache.mkdir()
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path), "TIKTOKEN_CACHE_DIR": str(empty_cache),
           "TMPDIR": str(tmp_path)}  # tiktoken's default cache is under the temp dir
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2", "3", "7"]  # a special token's text counts as plain text
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tiktoken-cache"] and not list(empty_cache.iterdir())


def test_workers_load_the_default_tokenizer_before_serving(proxy):
    # On first use instead, o200k's ~0.6 s load would stall every stream of that worker.
    output = proxy.output()
    assert re.search(r"tokenizer o200k_base loaded in \d+\.\d\d s", output), output[-2000:]
    assert "tokenizer cl100k_base loaded" not in output  # that one waits for its first use


def test_workers_collect_garbage_less_often(proxy):
    # serving.tune_worker_gc: the default (700) walked the live streams' objects ~4% of the time.
    assert proxy.output().count("garbage collection thresholds (20000, 10, 10)") == 2  # both workers


def _one_worker_env(port: int, emulator, redis_server, tmp_path) -> dict:
    """The environment of a proxy started by hand (not through the Proxy harness): one worker."""
    return {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "UPSTREAM_BASE_URL": emulator.url,
            "REFRESH_TOACCESS_XYHELPER_REFRESHTOACCESS_URL": emulator.url + "/applelogin",
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port), "LOG_DIR": str(tmp_path),
            "PROCESS_WORKERS": "1", "REFRESH_TOACCESS_DAILY_REFRESH": "false"}  # as the harness (conftest.Proxy)


def test_gunicorn_main_app_works_too(emulator, redis_server, tmp_path):
    port = free_port()
    env = _one_worker_env(port, emulator, redis_server, tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "main:app"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(url + "/healthz", timeout=1).ok, what="gunicorn main:app")
        response = requests.post(url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-gunicorn"},
                                 json={"model": "gpt-4o", "stream": True,
                                       "messages": [{"role": "user", "content": directive(text="ok", interval=0.2, chunk=1)}]},
                                 timeout=30)
        assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    finally:
        stop(process)


def _serve_with_open_file_limit(emulator, redis_server, tmp_path, soft: int, hard: int):
    """`python main.py` (one worker) started from a shell whose open-file limit is soft/hard."""
    port = free_port()
    env = {**_one_worker_env(port, emulator, redis_server, tmp_path), "RATE_LIMIT_PER_MINUTE": "0"}
    output = open(tmp_path / "out.txt", "wb")
    process = subprocess.Popen([sys.executable, "main.py"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                               start_new_session=True,
                               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(url + "/healthz", timeout=1).ok, what="proxy")
    return process, url, tmp_path / "out.txt"


def _worker_open_file_limit(master_pid: int) -> int:
    worker = int(open(f"/proc/{master_pid}/task/{master_pid}/children").read().split()[0])
    for line in open(f"/proc/{worker}/limits"):
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files line")


def _stream_works(url: str) -> bool:
    response = requests.post(url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-fds"}, timeout=30,
                             json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    return response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")


def test_workers_raise_a_low_open_file_limit_to_what_their_connections_need(emulator, redis_server, tmp_path):
    # A shell's usual 1024 would stop a worker at ~480 streams; worker_connections 2000 needs
    # 2 x 2000 sockets + the Redis pool (50) + 64.
    process, url, _ = _serve_with_open_file_limit(emulator, redis_server, tmp_path, soft=256, hard=20000)
    try:
        assert _worker_open_file_limit(process.pid) == 2 * 2000 + 50 + 64
        assert _stream_works(url)
    finally:
        stop(process)


def test_a_hard_open_file_limit_below_the_need_is_a_warning_not_a_failure(emulator, redis_server, tmp_path):
    process, url, output = _serve_with_open_file_limit(emulator, redis_server, tmp_path, soft=300, hard=600)
    try:
        assert _worker_open_file_limit(process.pid) == 600
        assert _stream_works(url)
    finally:
        stop(process)
    assert "open files are limited to 600 (hard limit): a worker can hold about 243 streams" in output.read_text()


def test_running_out_of_open_files_is_a_503_to_retry_not_a_502(emulator, redis_server, tmp_path):
    """With the hard limit far too low, the streams that find no descriptor for their upstream
    connection get 503 server_overloaded with Retry-After (the SDKs retry it), and the log says why."""
    process, url, output = _serve_with_open_file_limit(emulator, redis_server, tmp_path, soft=100, hard=100)
    answers, lock = [], threading.Lock()

    def hold_a_stream():
        body = {"model": "gpt-4o", "stream": True,
                "messages": [{"role": "user", "content": directive(text="abcdef", interval=0.5, chunk=1)}]}
        try:
            response = requests.post(url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-fds"},
                                     json=body, timeout=30)
            with lock:
                answers.append((response.status_code, response.headers.get("Retry-After"), response.text[:300]))
        except requests.RequestException as exc:  # no descriptor left to accept with: also a possible outcome
            with lock:
                answers.append((None, None, repr(exc)))

    try:
        threads = [threading.Thread(target=hold_a_stream) for _ in range(80)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert _stream_works(url)  # and the worker is fine once the burst is over
    finally:
        stop(process)
    refused = [a for a in answers if a[0] == 503]
    assert refused and all('"code":"server_overloaded"' in text and retry == "1" for _, retry, text in refused), answers
    assert not [a for a in answers if a[0] == 502], answers
    assert "out of open files (conversation)" in output.read_text()
