"""A clean install, every way the README documents it (issue 13 item 1): a new virtualenv with
requirements.txt alone (no test packages), then `python main.py` and `gunicorn main:app` from it,
each streaming one chat from the emulated upstream through a real Redis. The test suite's own
interpreter has the dev packages (and whatever pytest pulls in), which once hid that gunicorn's
gevent worker needs `packaging`; nothing here may run in that interpreter except the openai SDK
playing the client. The Docker image is built and tried when a Docker daemon is reachable.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import openai
import pytest
import redis
import requests

from .clean_venv import clean_venv, venv_environ
from .conftest import ROOT, directive, free_port, stop, wait_until

REQUIREMENTS = Path(ROOT) / "requirements.txt"
DEV_REQUIREMENTS = Path(ROOT) / "requirements-dev.txt"
PACKAGE = "backend_to_api"
BOOT_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def venv() -> Path:
    return clean_venv(REQUIREMENTS)


def in_venv(venv: Path, *args: str) -> subprocess.CompletedProcess:
    """`python <args>` in the activated venv, from the repository (as a user runs main.py)."""
    return subprocess.run(["python", *args], cwd=ROOT, env=venv_environ(venv), capture_output=True, text=True,
                          timeout=120)


def requirement_names(path: Path) -> List[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line.split("==")[0].strip().lower() for line in lines if line and not line.startswith("-")]


def test_the_venv_holds_requirements_txt_alone_and_passes_pip_check(venv):
    check = in_venv(venv, "-m", "pip", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    listed = in_venv(venv, "-m", "pip", "list", "--format=json")
    installed = {item["name"].lower().replace("_", "-") for item in json.loads(listed.stdout)}
    dev_only = set(requirement_names(DEV_REQUIREMENTS)) - set(requirement_names(REQUIREMENTS))
    assert dev_only and not dev_only & installed, f"test packages in the clean venv: {dev_only & installed}"
    assert set(requirement_names(REQUIREMENTS)) <= installed


IMPORT_EVERY_MODULE = f"""
import importlib, pkgutil, traceback
import {PACKAGE}
failed = []
for module in pkgutil.walk_packages({PACKAGE}.__path__, "{PACKAGE}."):
    try:
        importlib.import_module(module.name)
    except Exception:
        failed.append(module.name + ": " + traceback.format_exc(limit=-1).strip().splitlines()[-1])
print(len(failed) and "\\n".join(failed) or "all imported")
"""


def test_every_module_of_the_package_imports_in_the_venv(venv):
    result = in_venv(venv, "-c", IMPORT_EVERY_MODULE)
    assert result.returncode == 0 and result.stdout.strip() == "all imported", result.stdout + result.stderr


# gunicorn resolves worker_class itself (its Config.worker_class, setup() included): ask it.
LOAD_WORKER_CLASS = """
import sys
from gunicorn.config import Config
from backend_to_api.serving import gunicorn_options
from backend_to_api.settings import load_settings
config = Config()
config.set("worker_class", gunicorn_options(load_settings(overrides={"worker_class": sys.argv[1]}))["worker_class"])
loaded = config.worker_class
print(loaded.__module__ + "." + loaded.__qualname__)
"""


@pytest.mark.parametrize("worker_class, loaded", [
    ("gevent", "backend_to_api.stream_worker.StreamingGeventWorker"),
    ("gthread", "gunicorn.workers.gthread.ThreadWorker"),
])
def test_gunicorn_loads_each_worker_class_in_the_venv(venv, worker_class, loaded):
    result = in_venv(venv, "-c", LOAD_WORKER_CLASS, worker_class)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == loaded


# The service runs with its defaults, daily jobs included; a Redis database of its own keeps those
# jobs away from the tokens of the other tests (whose refresh counts are exact).
CLEAN_INSTALL_DB = 5


def serving_environ(venv: Path, emulator, redis_server, log_dir: Path) -> Dict[str, str]:
    """The README's way: settings from config.json, the upstream and Redis named by environment."""
    return {**venv_environ(venv), "HOST": "127.0.0.1", "PORT": str(free_port()), "UPSTREAM_BASE_URL": emulator.url,
            "REFRESH_TOACCESS_XYHELPER_REFRESHTOACCESS_URL": emulator.url + "/applelogin",
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port), "REDIS_DB": str(CLEAN_INSTALL_DB),
            "LOG_DIR": str(log_dir)}


@contextmanager
def serving(command: List[str], env: Dict[str, str], output: Path) -> Iterator[str]:
    """``command`` started from the repository; its base URL once /healthz answers."""
    with open(output, "wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        if not answers_health_checks(url, process):
            pytest.fail(f"`{' '.join(command)}` from the clean venv did not start:\n{output.read_text()[-6000:]}")
        yield url
    finally:
        stop(process)


def answers_health_checks(url: str, process: subprocess.Popen) -> bool:
    """Whether /healthz answers within BOOT_TIMEOUT; False at once if the server exits first (a
    worker that fails to boot takes gunicorn's master down with it)."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(url + "/healthz", timeout=1).ok:
                return True
        except requests.RequestException:
            pass  # not listening yet
        time.sleep(0.1)
    return False


def stream_one_chat(url: str, api_key: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key=api_key, max_retries=0, timeout=30)
    chunks = list(client.chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": directive(text="installed cleanly")}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "installed cleanly"
    assert chunks[-1].choices[0].finish_reason == "stop"


def access_token_key(refresh_token: str) -> str:
    return "b2a:at:" + hashlib.sha256(refresh_token.encode()).hexdigest()[:32]


@pytest.mark.parametrize("command", [["python", "main.py"], ["gunicorn", "main:app"]], ids=" ".join)
def test_the_clean_venv_serves_a_streamed_chat(venv, command, emulator, redis_server, tmp_path):
    env = serving_environ(venv, emulator, redis_server, tmp_path / "log")
    found = shutil.which(command[0], path=env["PATH"])
    assert found == str(venv / "bin" / command[0]), f"{command[0]} resolves to {found}, not the venv's"
    refresh_token = "rt-clean-install-" + uuid.uuid4().hex
    output = tmp_path / "service.out"
    with serving(command, env, output) as url:
        stream_one_chat(url, refresh_token)
        assert requests.get(url + "/readyz", timeout=5).json()["store"] == "redis"
    # the access token went through the real Redis, not a worker's in-process fallback
    shared = redis.Redis(host="127.0.0.1", port=redis_server.port, db=CLEAN_INSTALL_DB)
    assert shared.exists(access_token_key(refresh_token)) == 1
    log = output.read_text(errors="replace")
    assert "Traceback" not in log, log[-6000:]
    # the default worker, so gunicorn main:app did read gunicorn.conf.py (else: gunicorn's sync worker)
    assert "Using worker: backend_to_api.stream_worker.StreamingGeventWorker" in log, log[-6000:]


# --- Docker ---------------------------------------------------------------------------------

def docker_unavailable() -> Optional[str]:
    """Why the image cannot be tried here, or None."""
    if shutil.which("docker") is None:
        return "no docker command on PATH"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
        return f"no Docker daemon reachable ({last})"
    return None


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def test_the_docker_image_serves_a_streamed_chat(emulator, redis_server):
    reason = docker_unavailable()
    if reason:
        pytest.skip(f"{reason}: the image is not built here (test_packaging checks the Dockerfile installs "
                    "exactly requirements.txt; this test's clean venv installs the same file)")
    tag = "backend-to-api:clean-install-test"
    built = docker("build", "-t", tag, ROOT, timeout=1800)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    port = free_port()
    # Host networking: the container reaches the emulator and redis-server on the host's loopback.
    settings = {"HOST": "127.0.0.1", "PORT": str(port), "UPSTREAM_BASE_URL": emulator.url,
                "REFRESH_TOACCESS_XYHELPER_REFRESHTOACCESS_URL": emulator.url + "/applelogin",
                "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port), "REDIS_DB": str(CLEAN_INSTALL_DB)}
    started = docker("run", "-d", "--network", "host", *[f"--env={k}={v}" for k, v in settings.items()], tag)
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until(lambda: requests.get(url + "/healthz", timeout=1).ok, timeout=BOOT_TIMEOUT, what="container")
        except RuntimeError:
            pytest.fail("the container did not start:\n" + docker("logs", container).stderr[-6000:])
        stream_one_chat(url, "rt-docker-" + uuid.uuid4().hex)
    finally:
        docker("rm", "-f", container)
