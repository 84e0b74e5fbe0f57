"""Test harness: a real redis-server, the emulated backend-api and the proxy under real gunicorn,
each a subprocess on a free loopback port, started once per session (extra proxies on demand).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterator, List, Optional

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float = 20.0, what: str = "service") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout}s")


def threads_of_children(parent: int) -> int:
    """The OS threads of ``parent``'s child processes (the gunicorn workers), summed."""
    total = 0
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:  # field 4: the parent pid
            total += int(fields[17])  # field 20: num_threads
    return total


def stop(process: subprocess.Popen) -> None:
    """Stop a service started with ``start_new_session=True``, and whatever it left behind.

    A gthread worker can deadlock in gunicorn's own quit handler (SIGINT arriving while its
    thread pool starts a thread: the handler waits for a lock the interrupted code holds). The
    master would SIGKILL it after graceful_timeout, 30 s; we kill the master sooner, so its
    process group goes too, or the worker would outlive the tests."""
    if process.poll() is None:
        # SIGINT: gunicorn's quick shutdown (SIGTERM would wait for open keep-alive connections).
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # nothing left (or the group was never ours)


class RedisServer:
    def __init__(self, workdir: str, port: Optional[int] = None) -> None:
        self.port = port or free_port()  # a port: to start one where a proxy already looks
        self.workdir = workdir
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_until(self.ping, what="redis-server")
        return self

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def command(self, *args: str) -> bytes:
        """A raw RESP command (tests inspect keys without importing our store)."""
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(payload.encode())
            time.sleep(0.05)
            return sock.recv(65536)

    def stop(self) -> None:
        if self.process:
            stop(self.process)


class SilentListener:
    """A Redis that hangs: it accepts TCP connections on ``port`` (the kernel completes them from
    the backlog) and never reads or answers a byte."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)

    def close(self) -> None:
        self.sock.close()


TLS_CERT = os.path.join(ROOT, "tests", "tls", "cert.pem")  # self-signed, for 127.0.0.1


class Emulator:
    def __init__(self, tls: bool = False) -> None:
        self.port = free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "Emulator":
        tls = ["--certfile", TLS_CERT, "--keyfile", os.path.join(ROOT, "tests", "tls", "key.pem")] if self.tls else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.emulator", "--host", "127.0.0.1", "--port", str(self.port), *tls], cwd=ROOT,
            start_new_session=True,
        )
        wait_until(lambda: self._get("/_emulator/health").ok, what="emulator")
        return self

    def _get(self, path: str):
        return requests.get(self.url + path, timeout=5, verify=TLS_CERT if self.tls else True)

    def _post(self, path: str, **kwargs) -> None:
        requests.post(self.url + path, timeout=5, verify=TLS_CERT if self.tls else True, **kwargs).raise_for_status()

    def reset(self) -> None:
        self._post("/_emulator/reset")

    def configure(self, **values) -> None:
        self._post("/_emulator/config", json=values)

    def requests(self, path: Optional[str] = None) -> List[dict]:
        items = self._get("/_emulator/requests").json()
        return [item for item in items if path is None or item["path"] == path]

    def conversations(self) -> List[dict]:
        return self.requests("/backend-api/conversation")

    def streams(self) -> List[dict]:
        return self._get("/_emulator/streams").json()

    def revoke(self, access_token: str) -> None:
        self._post("/_emulator/revoke", json={"access_token": access_token})

    def stop(self) -> None:
        if self.process:
            stop(self.process)


class Proxy:
    """backend-to-api started exactly as the README says: `python main.py`, configured by env."""

    def __init__(self, emulator: Emulator, redis_port: Optional[int], workdir: str, env: Dict[str, str]) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.log_dir = os.path.join(workdir, "log")
        self.env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "CONFIG_FILE": os.path.join(ROOT, "config.json"),
            "UPSTREAM_BASE_URL": emulator.url,
            "REFRESH_TOACCESS_XYHELPER_REFRESHTOACCESS_URL": emulator.url + "/applelogin",
            "REFRESH_TOACCESS_OAI_REFRESHTOACCESS_URL": emulator.url + "/oauth/token",
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(redis_port or free_port()),
            "LOG_DIR": self.log_dir,
            "LOG_LEVEL": "DEBUG",
            "PROCESS_WORKERS": "2",
            "KEEP_ALIVE_INTERVAL": "1",
            "FIRST_EVENT_TIMEOUT": "5",
            # Tests reuse keys far more than 30 times a minute; test_limits_e2e sets its own limit.
            "RATE_LIMIT_PER_MINUTE": "100000",
            # The emulator serves the test images on loopback; test_ssrf_e2e runs without this.
            "URL_FETCH_ALLOWLIST": "127.0.0.1",
            # No daily job unless a test asks: at daily_refresh_hour it would refresh every token the
            # session has used and break exact refresh counts (test_daily_refresh triggers it itself).
            "REFRESH_TOACCESS_DAILY_REFRESH": "false",
            **env,
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.output_path = os.path.join(workdir, "proxy.out")
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "Proxy":
        self._output = open(self.output_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "main.py"], cwd=ROOT, env=self.env, stdout=self._output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(lambda: requests.get(self.url + "/healthz", timeout=1).ok, what="proxy")
        except RuntimeError:
            stop(self.process)
            raise RuntimeError("proxy did not start:\n" + self.output())
        return self

    def output(self) -> str:
        with open(self.output_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def logs(self) -> str:
        """Everything the proxy logged: stderr plus log/access.log."""
        text = self.output()
        path = os.path.join(self.log_dir, "access.log")
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as handle:
                text += handle.read()
        return text

    def client(self, api_key: str = "rt-default", **kwargs):
        import openai

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30)
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, **kwargs)

    def stop(self) -> None:
        if self.process:
            stop(self.process)
            self._output.close()


@pytest.fixture(scope="session")
def workdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="b2a-tests-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(workdir) -> Iterator[RedisServer]:
    server = RedisServer(workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    server = Emulator().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def start_proxy(emulator, redis_server, workdir):
    """Start an extra proxy with environment overrides; all are stopped at the end of the session."""
    started: List[Proxy] = []

    def start(env: Optional[Dict[str, str]] = None, redis: bool = True) -> Proxy:
        proxy_dir = tempfile.mkdtemp(dir=workdir)
        proxy = Proxy(emulator, redis_server.port if redis else None, proxy_dir, env or {}).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture(scope="session")
def proxy(start_proxy) -> Proxy:
    return start_proxy()


@pytest.fixture
def upstream():
    """start(*responses): a raw socket server answering with those responses (raw_http.RawServer),
    and a ConnectionPool of our own exchange (upstream/http1.py) to it, under the path /prefix."""
    from backend_to_api.upstream.http1 import ConnectionPool

    from .raw_http import RawServer

    servers = []

    def start(*responses):
        server = RawServer(responses)
        servers.append(server)
        return server, ConnectionPool(f"{server.url}/prefix", 2.0, None, max_idle=4)

    yield start
    for server in servers:
        server.close()


def directive(**values) -> str:
    """A user message that tells the emulator which scenario to play."""
    return json.dumps({"emu": values.pop("emu", "text"), **values}, ensure_ascii=False)
