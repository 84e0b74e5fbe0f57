"""Streaming load benchmark: N concurrent chats through the proxy vs. straight to the emulator.

    python bench/bench_streams.py [--streams 1000] [--spacing 0.1] [--events N | --duration 2]
                                  [--worker-class gevent|gthread] [--workers 2] [--threads 100]
                                  [--nonstream 50] [--long]

One run starts a real redis-server, the emulated backend-api (`python -m tests.emulator`) and the
proxy under real gunicorn (`python main.py`, configured by environment overrides), all on
127.0.0.1, using the harness classes of tests/conftest.py. Then, in this order:

  direct   N concurrent streams straight to the emulator's /backend-api/conversation (minted
           access token): the baseline of what the emulator + this load generator can do alone.
  proxy    the same N streams through /v1/chat/completions (stream=true). Every reply is checked:
           the concatenated deltas must equal the requested text, [DONE] must come, no error frame.
  batch    --nonstream concurrent non-stream chats through the proxy (content must be equal).
  long     (--long) ~16,000-character replies in the cumulative encoding (every upstream event
           repeats the whole text; ~1000 events each) and, for contrast, in the v1 delta
           encoding, streamed by --long-clients concurrent clients.

Each reply is `--events` upstream text events `--spacing` seconds apart (`chunk` characters each,
the emulator's `interval`; without --events, as many as fill `--duration`, 2 s); the emulator adds
~9 frames per reply (ping, metadata, DONE, ...).

Measured: ok/failed counts (a body cut after [DONE] still fails: a strict HTTP client raises);
time to first token (request start -> first non-empty text) p50/p99; per-stream duration p50/p99;
the wall time of each phase; `max_active`, the most streams that were between their first token
and their end at once (what the server really held concurrently); proxy/direct ratios; proxy CPU
seconds (utime+stime of the gunicorn master, its reaped children and the live workers, from
/proc/<pid>/stat) per 1000 upstream events (the emulator's own count of frames sent, and per 1000
text events), split per worker; the peak of the summed RSS of master + workers (sampled every
0.2 s); the CPU of the emulator, of this load generator and of every other process on the machine
(/proc/stat), because all of them share the same CPUs and skew the timings. For the long replies:
proxy CPU per upstream event in the first quarter of the reply vs. the last quarter (windows from
the clients' arrival times of the 1st/25%/75%/last character, CPU interpolated from 0.05 s
samples) and their ratio: ~1.0 means the cost per event does not grow with the text.

--wait-quiet S waits (at most S seconds) for an idle machine first; --keep-logs DIR keeps the
proxy's and the emulator's output.

The load generator is one process of gevent greenlets, not OS threads, so it holds thousands of
streams; `ulimit -n` is raised to the hard limit. It reads replies straight off the socket (Reply:
chunked framing checked as strictly as http.client does, at a fraction of its CPU), because the
emulator and the load generator share the CPUs with the proxy they measure. Every wait
is bounded (socket timeouts, a per-request gevent.Timeout, a per-phase join timeout), and every
subprocess is stopped on exit, Ctrl-C or an exception.
"""
from gevent import monkey

monkey.patch_all()  # before anything imports socket, ssl, threading, subprocess or time

import argparse  # noqa: E402
import contextlib  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Callable, Dict, Iterable, Iterator, List, Optional  # noqa: E402

import gevent  # noqa: E402
import orjson  # noqa: E402
import requests  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.load_probes import ProbeReport, ProbeRun  # noqa: E402
from tests.conftest import Emulator, Proxy, RedisServer, wait_until  # noqa: E402
from tests.emulator.tokens import mint_access_token  # noqa: E402

HOST = "127.0.0.1"
MODEL = "gpt-4o"
API_KEY = "rt-bench-streams"      # not a JWT: the proxy exchanges it at the emulator's /applelogin
SOCKET_TIMEOUT = 60.0             # per recv/connect
RECV_SIZE = 65536
REQUEST_TIMEOUT = 180.0           # a whole request, start to end
FRAMES_PER_REPLY_EXTRA = 9        # emulator frames besides the text events (for the estimate only)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_CAP = 200_000              # bounds the sampler loop (hours at 0.05 s)


# --- processes: CPU and RSS from /proc ---------------------------------------------------------

def _stat_fields(pid: int) -> Optional[List[str]]:
    """Fields of /proc/<pid>/stat after the command name (field n of proc(5) is index n - 3)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


class ProcTree:
    """A process and its direct children (the gunicorn master and its workers)."""

    def __init__(self, root_pid: int) -> None:
        self.root = root_pid
        self.seen_children: set = set()

    def children(self) -> List[int]:
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                fields = _stat_fields(int(name))
                if fields is not None and fields[1] == str(self.root):
                    found.append(int(name))
        self.seen_children.update(found)
        return found

    def cpu_by_child(self) -> Dict[int, float]:
        """CPU seconds of each live child (worker), to show how the load was spread."""
        found = {}
        for pid in self.children():
            fields = _stat_fields(pid)
            if fields is not None:
                found[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        return found

    def cpu(self) -> float:
        """CPU seconds: the root (with its reaped children, so a replaced worker still counts) plus
        the live children."""
        total = 0
        root = _stat_fields(self.root)
        if root is not None:
            total += sum(int(value) for value in root[11:15])  # utime stime cutime cstime
        for pid in self.children():
            fields = _stat_fields(pid)
            if fields is not None:
                total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def rss(self) -> int:
        total = 0
        for pid in [self.root, *self.children()]:
            fields = _stat_fields(pid)
            if fields is not None:
                total += int(fields[21]) * PAGE_SIZE
        return total


def machine_busy(kind: str = "all") -> float:
    """CPU seconds the whole machine spent busy since boot (all CPUs, /proc/stat): "all", "tasks"
    (user + nice + system: time charged to processes), "irq" (irq + softirq: loopback TCP is
    largely processed there and charged to no process) or "steal" (time the hypervisor ran someone
    else on our CPUs: a shared host that is busy makes every figure of a run slower)."""
    with open("/proc/stat") as handle:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(v) for v in handle.readline().split()[1:9])
    parts = {"tasks": user + nice + system, "irq": irq + softirq, "steal": steal}
    parts["all"] = parts["tasks"] + parts["irq"] + steal
    return parts[kind] / CLK_TCK


def wait_until_quiet(limit: float) -> float:
    """Wait up to `limit` seconds for a machine that is >= 85% idle over 3 s (others' test runs
    share these 2 CPUs and skew every timing); returns the busy share last seen."""
    deadline, share = time.monotonic() + limit, 1.0
    while True:
        before, started = machine_busy(), time.monotonic()
        time.sleep(3)
        share = (machine_busy() - before) / ((time.monotonic() - started) * (os.cpu_count() or 1))
        if share <= 0.15 or time.monotonic() >= deadline:
            return share


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Sampler:
    """Samples (time, proxy CPU, proxy RSS) every `period` seconds in a greenlet."""

    def __init__(self, tree: ProcTree, period: float) -> None:
        self.tree = tree
        self.period = period
        self.samples: List[tuple] = []
        self._greenlet: Optional[gevent.Greenlet] = None

    def __enter__(self) -> "Sampler":
        self._greenlet = gevent.spawn(self._run)
        return self

    def __exit__(self, *exc) -> None:
        self._greenlet.kill()
        self._take()

    def _run(self) -> None:
        for _ in range(SAMPLE_CAP):
            self._take()
            gevent.sleep(self.period)

    def _take(self) -> None:
        self.samples.append((time.monotonic(), self.tree.cpu(), self.tree.rss()))

    def peak_rss(self) -> int:
        return max(sample[2] for sample in self.samples)

    def cpu_at(self, moment: float) -> float:
        """Proxy CPU seconds at `moment`, interpolated between the two nearest samples."""
        samples = self.samples
        if moment <= samples[0][0]:
            return samples[0][1]
        for (t0, c0, _), (t1, c1, _) in zip(samples, samples[1:]):
            if t0 <= moment <= t1:
                return c0 if t1 == t0 else c0 + (c1 - c0) * (moment - t0) / (t1 - t0)
        return samples[-1][1]


# --- the services ----------------------------------------------------------------------------

class QuietEmulator(Emulator):
    """tests.conftest.Emulator with its output (the "listening on" line, gevent's note on SIGINT)
    sent to a file instead of into the report."""

    def __init__(self, output_path: str) -> None:
        super().__init__()
        self.output_path = output_path

    def start(self) -> "QuietEmulator":
        with open(self.output_path, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.emulator", "--host", HOST, "--port", str(self.port)],
                cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: requests.get(self.url + "/_emulator/health", timeout=1).ok, what="emulator")
        return self


def proxy_env(args: argparse.Namespace) -> Dict[str, str]:
    return {
        "WORKER_CLASS": args.worker_class,
        "PROCESS_WORKERS": str(args.workers),
        "PROCESS_THREADS": str(args.threads),
        "WORKER_CONNECTIONS": str(args.connections),
        "LOG_LEVEL": "WARNING",
        "NEED_LOG_TO_FILE": "false",
        # the production defaults of config.json (the harness shortens these for its tests)
        "KEEP_ALIVE_INTERVAL": "5",
        "FIRST_EVENT_TIMEOUT": "5",
    }


def start_services(stack: contextlib.ExitStack, args: argparse.Namespace):
    workdir = tempfile.mkdtemp(prefix="b2a-bench-")
    stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    if args.keep_logs:  # runs after the services are stopped, before the folder goes
        stack.callback(keep_logs, workdir, args.keep_logs)
    redis_server = RedisServer(workdir)
    stack.callback(redis_server.stop)
    redis_server.start()
    emulator = QuietEmulator(os.path.join(workdir, "emulator.out"))
    stack.callback(emulator.stop)
    emulator.start()
    proxy = Proxy(emulator, redis_server.port, os.path.join(workdir, "proxy"), proxy_env(args))
    os.makedirs(proxy.workdir, exist_ok=True)
    stack.callback(proxy.stop)
    proxy.start()
    return redis_server, emulator, proxy


def keep_logs(workdir: str, destination: str) -> None:
    os.makedirs(destination, exist_ok=True)
    for source in (os.path.join(workdir, "emulator.out"), os.path.join(workdir, "proxy", "proxy.out")):
        if os.path.exists(source):
            shutil.copy(source, destination)


def raise_open_file_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- requests ----------------------------------------------------------------------------------

def reply_text(index: int, length: int) -> str:
    """A distinct text per stream, with multi-byte and astral characters in it."""
    base = f"[{index:05d}] Grüße 世界 🌍 — the quick brown fox jumps over the lazy dog. "
    return (base * (length // len(base) + 1))[:length]


def directive(text: str, chunk: int, interval: float, encoding: str = "cumulative") -> str:
    return json.dumps({"emu": "text", "text": text, "chunk": chunk, "interval": interval,
                       "encoding": encoding}, ensure_ascii=False)


def proxy_body(content: str, stream: bool) -> bytes:
    return json.dumps({"model": MODEL, "stream": stream,
                       "messages": [{"role": "user", "content": content}]}).encode()


def direct_body(content: str) -> bytes:
    message = {"id": str(uuid.uuid4()), "author": {"role": "user"},
               "content": {"content_type": "text", "parts": [content]}, "metadata": {}}
    return json.dumps({"action": "next", "messages": [message], "parent_message_id": str(uuid.uuid4()),
                       "model": MODEL}).encode()


class Reply:
    """An HTTP/1.1 response read straight off the (gevent) socket: status and headers, then the
    body as it arrives.

    http.client costs several Python calls per chunk (a readline, a read, a read of the CRLF, each
    through socket.makefile) and a resolver round trip through gevent's thread pool per connection;
    this load generator reads ~30,000 chunks per phase, on the CPUs of the proxy it measures. The
    chunked framing is still checked: a body that ends before its last chunk raises
    IncompleteRead, as in http.client, and a bad size line or a chunk without its CRLF is an error.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf, self._pos = b"", 0  # bytes received, and how many of them are consumed
        status_line, *lines = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def close(self) -> None:
        self.sock.close()

    def pieces(self) -> Iterator[bytes]:
        """The body: chunk by chunk, or as received when it is not chunked."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._chunks()
        if "content-length" in self.headers:
            return iter((self._take(int(self.headers["content-length"])),))
        return self._to_eof()

    def read(self, limit: Optional[int] = None) -> bytes:
        """The whole body, or its first `limit` bytes."""
        parts, size = [], 0
        for piece in self.pieces():
            parts.append(piece)
            size += len(piece)
            if limit is not None and size >= limit:
                break
        return b"".join(parts)[:limit]

    def _chunks(self) -> Iterator[bytes]:
        # Up to the last chunk, of size 0; nothing here sends trailers, and the connection closes.
        while size := self._chunk_size():
            chunk = self._take(size + 2)
            if chunk[-2:] != b"\r\n":
                raise http.client.HTTPException("chunk not followed by CRLF")
            yield chunk[:-2]

    def _chunk_size(self) -> int:
        line = self._until(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            size = -1
        if size < 0:
            raise http.client.HTTPException(f"bad chunk size line {line[:40]!r}")
        return size

    def _to_eof(self) -> Iterator[bytes]:
        if self._pos < len(self._buf):
            yield self._buf[self._pos:]
        while data := self.sock.recv(RECV_SIZE):
            yield data

    def _until(self, end: bytes) -> bytes:
        """The bytes up to `end`, consumed with it."""
        while (found := self._buf.find(end, self._pos)) < 0:
            self._fill()
        line, self._pos = self._buf[self._pos:found], found + len(end)
        return line

    def _take(self, size: int) -> bytes:
        while len(self._buf) - self._pos < size:
            self._fill()
        data, self._pos = self._buf[self._pos:self._pos + size], self._pos + size
        return data

    def _fill(self) -> None:
        data = self.sock.recv(RECV_SIZE)
        if not data:
            raise http.client.IncompleteRead(self._buf[self._pos:])
        # Only the unconsumed rest is copied: at most one chunk that arrives in several reads.
        self._buf, self._pos = self._buf[self._pos:] + data, 0


def post(port: int, path: str, body: bytes, headers: Dict[str, str]) -> Reply:
    """POST `body`; the Reply once its headers are in. The headers are http.client's."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(SOCKET_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect((HOST, port))  # a numeric address: no resolver
        fields = {"Host": f"{HOST}:{port}", "Accept-Encoding": "identity", "Content-Length": len(body),
                  "Content-Type": "application/json", "Connection": "close", **headers}
        head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body)
        return Reply(sock)
    except BaseException:
        sock.close()
        raise


def sse_data(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The data payloads (bytes) of an SSE body given as the pieces it arrives in, each event's once
    its blank line has arrived. Linear in the body: a piece is usually whole events (one chunk per
    event); otherwise its bytes wait in `pending` and are searched only once."""
    pending = bytearray()  # the start of an event whose blank line has not come yet
    for piece in pieces:
        if pending or not piece.endswith(b"\n\n"):
            searched = max(len(pending) - 1, 0)  # the blank line may straddle the two pieces
            pending += piece
            cut = pending.rfind(b"\n\n", searched)
            if cut < 0:
                continue
            piece = bytes(pending[:cut + 2])
            del pending[:cut + 2]
        for line in piece.split(b"\n"):
            if line.startswith(b"data: "):
                yield line[6:]


@dataclass
class Result:
    ok: bool = False
    error: str = ""
    ttft: Optional[float] = None
    duration: Optional[float] = None
    end: Optional[float] = None              # monotonic time the reply ended
    marks: Dict[int, float] = field(default_factory=dict)  # chars received -> first time seen


class Activity:
    """How many streams have their first token but not their end: the streams truly served at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def begin(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def end(self) -> None:
        self.now -= 1


def timed(job: Callable[[Result, float], None]) -> Result:
    """Run one request under the whole-request timeout; any exception is a failure, not a crash."""
    result, started = Result(), time.monotonic()
    try:
        with gevent.Timeout(REQUEST_TIMEOUT):
            job(result, started)
    except gevent.Timeout:
        result.ok, result.error = False, f"timeout after {REQUEST_TIMEOUT:.0f}s"
    except Exception as exc:  # connection refused / reset, bad JSON, ...
        result.ok, result.error = False, f"{exc.__class__.__name__}: {str(exc)[:80]}"
    result.end = time.monotonic()
    result.duration = result.end - started
    return result


@dataclass
class ProxyReply:
    """What one proxy stream delivered."""
    parts: List[str] = field(default_factory=list)
    done: bool = False       # data: [DONE] seen
    broken: str = ""         # the exception that cut the body, if any


def read_proxy_sse(response, result: Result, activity: Activity, started: float,
                   marks: tuple) -> ProxyReply:
    """Collect the deltas of an OpenAI SSE body; note the first token, error frames and `marks`."""
    reply, size, pending = ProxyReply(), 0, list(marks)
    try:
        for data in sse_data(response.pieces()):
            if data == b"[DONE]":
                reply.done = True
                continue
            payload = orjson.loads(data)
            if "error" in payload:
                result.error = "error frame: " + json.dumps(payload["error"])[:120]
            for choice in payload.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if not text:
                    continue
                if result.ttft is None:
                    result.ttft = time.monotonic() - started
                    activity.begin()
                reply.parts.append(text)
                size += len(text)
                while pending and size >= pending[0]:
                    result.marks[pending.pop(0)] = time.monotonic()
    except (http.client.HTTPException, OSError) as exc:  # the body was cut
        reply.broken = exc.__class__.__name__
    finally:
        if result.ttft is not None:
            activity.end()
    return reply


def judge_proxy_reply(reply: ProxyReply, expected: str) -> str:
    """Why the reply is not exactly right ("" when it is)."""
    got = "".join(reply.parts)
    if reply.broken:
        return f"{reply.broken} " + ("after [DONE] and the exact text" if reply.done and got == expected
                                     else f"before the end ({len(got)}/{len(expected)} chars)")
    if not reply.done:
        return "no [DONE]"
    if got != expected:
        return f"text differs: got {len(got)} chars, expected {len(expected)}"
    return ""


def proxy_stream(port: int, content: str, expected: str, activity: Activity,
                 marks: tuple = ()) -> Result:
    def job(result: Result, started: float) -> None:
        response = post(port, "/v1/chat/completions", proxy_body(content, True),
                        {"Authorization": f"Bearer {API_KEY}"})
        with contextlib.closing(response):
            if response.status != 200:
                result.error = f"HTTP {response.status}: {response.read(200)!r}"
                return
            reply = read_proxy_sse(response, result, activity, started, marks)
            result.error = result.error or judge_proxy_reply(reply, expected)
            result.ok = not result.error

    return timed(job)


def direct_stream(port: int, token: str, content: str, expected: str, activity: Activity) -> Result:
    def job(result: Result, started: float) -> None:
        response = post(port, "/backend-api/conversation", direct_body(content),
                        {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"})
        with contextlib.closing(response):
            if response.status != 200:
                result.error = f"HTTP {response.status}: {response.read(200)!r}"
                return
            text, done = "", False
            try:
                for data in sse_data(response.pieces()):
                    if data == b"[DONE]":
                        done = True
                    elif data.startswith(b'{"message"') and b'"assistant"' in data:
                        message = orjson.loads(data)["message"]
                        parts = message["content"].get("parts") or [""]
                        if parts[0] and result.ttft is None:
                            result.ttft = time.monotonic() - started
                            activity.begin()
                        text = parts[0] or text
            finally:
                if result.ttft is not None:
                    activity.end()
            if not done:
                result.error = "no [DONE]"
            elif text != expected:
                result.error = f"text differs: got {len(text)} chars, expected {len(expected)}"
            result.ok = not result.error

    return timed(job)


def proxy_complete(port: int, content: str, expected: str) -> Result:
    def job(result: Result, started: float) -> None:
        response = post(port, "/v1/chat/completions", proxy_body(content, False),
                        {"Authorization": f"Bearer {API_KEY}"})
        with contextlib.closing(response):
            raw = response.read()
            if response.status != 200:
                result.error = f"HTTP {response.status}: {raw[:200]!r}"
                return
            got = orjson.loads(raw)["choices"][0]["message"]["content"]
            result.ttft = time.monotonic() - started
            result.error = "" if got == expected else f"content differs: {len(got)} vs {len(expected)} chars"
            result.ok = not result.error

    return timed(job)


# --- phases --------------------------------------------------------------------------------------

@dataclass
class Phase:
    name: str
    results: List[Result]
    wall: float
    activity: Activity
    proxy_cpu: float = 0.0
    emulator_cpu: float = 0.0
    loadgen_cpu: float = 0.0
    frames: int = 0
    peak_rss: int = 0
    worker_cpu: List[float] = field(default_factory=list)  # per live worker, busiest first
    others_cpu: float = 0.0  # CPU of every other process on the machine during the phase
    irq_cpu: float = 0.0     # irq + softirq time of the machine (mostly our loopback traffic)
    steal_cpu: float = 0.0   # CPU time the host gave to other guests while the phase ran
    seconds: float = 0.0     # how long the phase ran


def run_concurrently(count: int, job: Callable[[int], Result], timeout: float, ramp: float = 0.0) -> tuple:
    """`count` jobs, all at once or (`ramp` > 0) started evenly over `ramp` seconds; returns their
    results (a job still running at `timeout` fails) and the wall time from the start to the last end."""
    started = time.monotonic()
    greenlets = [gevent.spawn_later(ramp * index / count, job, index) if ramp > 0 else gevent.spawn(job, index)
                 for index in range(count)]
    gevent.joinall(greenlets, timeout=timeout)
    results = []
    for greenlet in greenlets:
        if greenlet.ready() and greenlet.successful():
            results.append(greenlet.value)
        else:
            greenlet.kill(block=False)
            results.append(Result(error="phase timeout" if not greenlet.ready() else "crashed"))
    ends = [r.end for r in results if r.end is not None]
    return results, (max(ends) - started) if ends else timeout


def measured_phase(name: str, env: "Bench", count: int, job: Callable[[int], Result],
                   activity: Activity, period: float = 0.2, ramp: float = 0.0) -> tuple:
    """Run a phase with CPU and RSS measured around it; returns (Phase, Sampler)."""
    env.emulator.reset()
    emulator_tree = ProcTree(env.emulator.process.pid)
    emu0, own0, workers0 = emulator_tree.cpu(), own_cpu(), env.proxy_tree.cpu_by_child()
    redis0, tasks0, irq0 = env.redis_tree.cpu(), machine_busy("tasks"), machine_busy("irq")
    steal0 = machine_busy("steal")
    started = time.monotonic()
    with Sampler(env.proxy_tree, period) as sampler:
        results, wall = run_concurrently(count, job, env.args.phase_timeout, ramp)
    workers1 = env.proxy_tree.cpu_by_child()
    proxy_cpu = sampler.samples[-1][1] - sampler.samples[0][1]
    emulator_cpu, loadgen_cpu = emulator_tree.cpu() - emu0, own_cpu() - own0
    ours = proxy_cpu + emulator_cpu + loadgen_cpu + env.redis_tree.cpu() - redis0
    phase = Phase(name, results, wall, activity, proxy_cpu=proxy_cpu, emulator_cpu=emulator_cpu,
                  loadgen_cpu=loadgen_cpu, others_cpu=max(0.0, machine_busy("tasks") - tasks0 - ours),
                  irq_cpu=machine_busy("irq") - irq0, steal_cpu=machine_busy("steal") - steal0,
                  seconds=time.monotonic() - started,
                  frames=sum(s["events_sent"] for s in env.emulator.streams()),
                  peak_rss=sampler.peak_rss(),
                  worker_cpu=sorted((workers1[pid] - workers0.get(pid, 0.0) for pid in workers1), reverse=True))
    return phase, sampler


@dataclass
class Bench:
    args: argparse.Namespace
    emulator: Emulator
    proxy: Proxy
    proxy_tree: ProcTree
    redis_tree: ProcTree
    token: str


def short_case(args: argparse.Namespace, index: int) -> tuple:
    text = reply_text(index, args.events * args.chunk)
    return directive(text, args.chunk, args.spacing), text


def warm_up(env: Bench) -> List[Result]:
    """Token exchange, tiktoken and connection pools in every worker, before anything is timed."""
    args, activity = env.args, Activity()
    count = max(8, 4 * args.workers)

    def job(index: int) -> Result:
        text = reply_text(index, 12)
        content = directive(text, 4, 0.0)
        if index % 2:
            return proxy_complete(env.proxy.port, content, text)
        return proxy_stream(env.proxy.port, content, text, activity)

    first = job(0)  # one alone first: the concurrent ones then find the access token cached
    results, _ = run_concurrently(count, job, 60)
    direct = direct_stream(env.emulator.port, env.token, directive("warm", 4, 0.0), "warm", activity)
    return [first, *results, direct]


def direct_phase(env: Bench) -> Phase:
    activity = Activity()

    def job(index: int) -> Result:
        content, text = short_case(env.args, index)
        return direct_stream(env.emulator.port, env.token, content, text, activity)

    return measured_phase("direct", env, env.args.streams, job, activity, ramp=env.args.ramp)[0]


def proxy_phase(env: Bench) -> tuple:
    """The streams through the proxy, with the keep-alive and disconnect probes beside them."""
    probes = ProbeRun(env.proxy.port, env.args.probes, silence=6.0, delay=1.0, run_id=uuid.uuid4().hex[:8])
    phase = proxied_streams(env, "proxy")
    return phase, probes.finish(env.emulator.streams)


def proxied_streams(env: Bench, name: str) -> Phase:
    """The short streams of the benchmark through the proxy, measured as the phase ``name``."""
    activity = Activity()

    def job(index: int) -> Result:
        content, text = short_case(env.args, index)
        return proxy_stream(env.proxy.port, content, text, activity)

    return measured_phase(name, env, env.args.streams, job, activity, ramp=env.args.ramp)[0]


def nonstream_phase(env: Bench) -> Phase:
    def job(index: int) -> Result:
        content, text = short_case(env.args, 100_000 + index)
        return proxy_complete(env.proxy.port, content, text)

    return measured_phase("nonstream", env, env.args.nonstream, job, Activity())[0]


@dataclass
class LongRun:
    encoding: str
    phase: Phase
    q1_cpu_per_event: float
    q4_cpu_per_event: float
    cpu_per_event: float


def long_phase(env: Bench, encoding: str) -> LongRun:
    args, activity = env.args, Activity()
    chunk = max(1, args.long_chars // args.long_events)
    first, quarter, three_quarters = chunk, args.long_chars // 4, 3 * args.long_chars // 4
    marks = (first, quarter, three_quarters, args.long_chars)

    def job(index: int) -> Result:
        text = reply_text(index, args.long_chars)
        content = directive(text, chunk, args.long_spacing, encoding)
        return proxy_stream(env.proxy.port, content, text, activity, marks)

    phase, sampler = measured_phase(f"long-{encoding}", env, args.long_clients, job, activity, 0.05)
    done = [r for r in phase.results if r.ok and len(r.marks) == len(marks)]

    def cpu_per_event(start_mark: int, end_mark: int) -> float:
        if not done:
            return float("nan")
        start = percentile([r.marks[start_mark] for r in done], 50)
        end = percentile([r.marks[end_mark] for r in done], 50)
        events = (end_mark - start_mark) / chunk * len(done)
        return (sampler.cpu_at(end) - sampler.cpu_at(start)) / events

    return LongRun(encoding, phase, cpu_per_event(first, quarter),
                   cpu_per_event(three_quarters, args.long_chars),
                   phase.proxy_cpu / max(phase.frames, 1))


# --- report --------------------------------------------------------------------------------------

def soak(env: Bench) -> List[Phase]:
    """More rounds of the same streams through the same proxy: a leak shows as an RSS that keeps
    growing from round to round (allocator pools and caches level off after a few)."""
    rounds: List[Phase] = []
    rss: List[float] = []
    for number in range(1, env.args.soak + 1):
        phase = proxied_streams(env, f"soak {number}")
        rounds.append(phase)
        rss.append(env.proxy_tree.rss() / 2**20)
        failed = failures(phase)
        print(f"soak      round {number}/{env.args.soak}: ok={ok_count(phase)} failed={len(phase.results) - ok_count(phase)}"
              f"  wall={phase.wall:.2f}s  proxy rss after {rss[-1]:.0f}MB" + (f"  ({failed})" if failed else ""), flush=True)
    print(f"soak      {env.args.soak * env.args.streams} more streams: proxy rss {rss[0]:.0f}MB after the first round, "
          f"{rss[-1]:.0f}MB after the last ({rss[-1] - rss[0]:+.0f}MB)", flush=True)
    return rounds


def code_state() -> str:
    """Which code was measured: HEAD and how many tracked files differ (read-only git calls)."""
    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", "--no-optional-locks", *argv], cwd=ROOT, capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return f"code: {ROOT} (not a git checkout)"
    changed = len(git("status", "--porcelain", "--untracked-files=no").splitlines())
    return f"code: HEAD {head}" + (f" + uncommitted changes in {changed} tracked files" if changed else "")


def percentile(values: List[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(pct / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def ok_count(phase: Phase) -> int:
    return sum(r.ok for r in phase.results)


def stats(phase: Phase) -> Dict[str, float]:
    good = [r for r in phase.results if r.ok]
    return {"ttft50": percentile([r.ttft for r in good], 50), "ttft99": percentile([r.ttft for r in good], 99),
            "dur50": percentile([r.duration for r in good], 50), "dur99": percentile([r.duration for r in good], 99)}


def failures(phase: Phase) -> str:
    counts: Dict[str, int] = {}
    for result in phase.results:
        if not result.ok:
            counts[result.error] = counts.get(result.error, 0) + 1
    top = sorted(counts.items(), key=lambda item: -item[1])[:3]
    return "; ".join(f"{n}x {error}" for error, n in top)


def stream_line(phase: Phase) -> str:
    s = stats(phase)
    line = (f"{phase.name:<9} ok={ok_count(phase)} failed={len(phase.results) - ok_count(phase)}  "
            f"ttft p50={s['ttft50']:.3f}s p99={s['ttft99']:.3f}s  "
            f"stream p50={s['dur50']:.2f}s p99={s['dur99']:.2f}s  wall={phase.wall:.2f}s  "
            f"max_active={phase.activity.peak}")
    return line + (f"\n          failures: {failures(phase)}" if failures(phase) else "")


def cpu_lines(phase: Phase, text_events: int) -> str:
    """Who burnt the CPU during a phase (proxy per upstream event, the rest for context)."""
    per_frame = 1000 * phase.proxy_cpu / max(phase.frames, 1)
    per_text = 1000 * phase.proxy_cpu / max(text_events, 1)
    workers = "/".join(f"{c:.2f}" for c in phase.worker_cpu)
    share = 100 * phase.others_cpu / max(phase.seconds * (os.cpu_count() or 1), 1e-9)
    return (f"{phase.name:<9} cpu: proxy {phase.proxy_cpu:.2f}s = {per_frame:.3f}s/1000 upstream events "
            f"({phase.frames} events; {per_text:.3f}s/1000 text events), per worker {workers} | "
            f"emulator {phase.emulator_cpu:.2f}s | loadgen {phase.loadgen_cpu:.2f}s\n"
            f"{'':<9} machine: softirq {phase.irq_cpu:.2f}s, stolen by the host {phase.steal_cpu:.2f}s, "
            f"other processes {phase.others_cpu:.2f}s "
            f"({share:.0f}% of all cpus) | peak proxy rss {phase.peak_rss / 2**20:.0f}MB")


def ratio(a: float, b: float) -> str:
    return f"x{a / b:.2f}" if b > 0 else "n/a"


def proxy_log_summary(proxy: Proxy) -> str:
    text = proxy.output()
    lines = text.splitlines()
    counts = {"tracebacks": text.count("Traceback"), "worker timeouts": text.count("WORKER TIMEOUT"),
              "errors": sum("[ERROR]" in line for line in lines),
              "warnings": sum("[WARNING]" in line for line in lines)}
    summary = "proxy log: " + ", ".join(f"{n} {name}" for name, n in counts.items())
    notable = [line for line in lines if any(k in line for k in ("[ERROR]", "[CRITICAL]", "TIMEOUT"))][:3]
    if "Traceback" in text:  # the first one in full (bounded): it names the failing line
        first = text.index("Traceback")
        notable += ["first traceback:"] + text[first:].splitlines()[:40]
    return summary + "".join(f"\n  | {line[:160]}" for line in notable)


def header(args: argparse.Namespace) -> str:
    model = (f"threads={args.threads}" if args.worker_class == "gthread"
             else f"connections={args.connections}")
    return (f"=== bench_streams: worker_class={args.worker_class} workers={args.workers} {model} | "
            f"streams={args.streams} events={args.events} spacing={args.spacing}s chunk={args.chunk} "
            f"ramp={args.ramp}s nonstream={args.nonstream} | {os.cpu_count()} cpus | {code_state()}")


def ratio_line(direct: Phase, proxied: Phase) -> str:
    d, p = stats(direct), stats(proxied)
    return (f"proxy/direct  ttft p50 {ratio(p['ttft50'], d['ttft50'])}  p99 {ratio(p['ttft99'], d['ttft99'])}  "
            f"stream p99 {ratio(p['dur99'], d['dur99'])}  wall {ratio(proxied.wall, direct.wall)}  "
            # The machine's speed drifts by +-15% between runs; this ratio of two CPU figures taken in
            # the same phase barely does, so it is the one to compare across runs and commits.
            f"cpu proxy/emulator {ratio(proxied.proxy_cpu, proxied.emulator_cpu)}")


def nonstream_line(batch: Phase) -> str:
    s = stats(batch)
    return (f"nonstream ok={ok_count(batch)} failed={len(batch.results) - ok_count(batch)}  "
            f"latency p50={s['ttft50']:.2f}s p99={s['ttft99']:.2f}s  wall={batch.wall:.2f}s  "
            f"proxy cpu={batch.proxy_cpu:.2f}s" + (f"\n          failures: {failures(batch)}" if failures(batch) else ""))


def long_lines(args: argparse.Namespace, run: LongRun, short_per_event: float) -> str:
    s = stats(run.phase)
    return (f"long {run.encoding:<10} {args.long_clients} clients x {args.long_chars} chars / {args.long_events} "
            f"events, spacing {args.long_spacing}s: ok={ok_count(run.phase)} "
            f"failed={len(run.phase.results) - ok_count(run.phase)} stream p50={s['dur50']:.2f}s "
            f"p99={s['dur99']:.2f}s\n"
            f"     {'':<10} proxy cpu/event first quarter={run.q1_cpu_per_event * 1e6:.0f}us last quarter="
            f"{run.q4_cpu_per_event * 1e6:.0f}us  ratio last/first {ratio(run.q4_cpu_per_event, run.q1_cpu_per_event)}"
            f"  (whole reply {run.cpu_per_event * 1e6:.0f}us/event; short replies {short_per_event * 1e6:.0f}us/event)"
            + (f"\n          failures: {failures(run.phase)}" if failures(run.phase) else ""))


def all_exact(phases: List[Phase]) -> bool:
    return all(ok_count(phase) == len(phase.results) for phase in phases)


def wall_target(spacing: float) -> Optional[float]:
    """Issue #4: at most 1.2x the direct wall time with events 100 ms apart, 2x at 50 ms."""
    if spacing >= 0.1:
        return 1.2
    return 2.0 if spacing >= 0.05 else None


def target_lines(args: argparse.Namespace, direct: Phase, proxied: Phase, peak_rss: int,
                 probes: ProbeReport, exact: bool) -> List[str]:
    """Each target of issue #4 that this run measures: the figure, the bound, met or not."""
    d, p = stats(direct), stats(proxied)
    wall, bound = proxied.wall / direct.wall if direct.wall else float("inf"), wall_target(args.spacing)
    overhead = p["ttft50"] - d["ttft50"]
    checks = [("every reply exact", "yes" if exact else "no", "yes", exact),
              ("keep-alive and disconnect under load", "yes" if probes.all_ok() else "no", "yes", probes.all_ok()),
              ("peak RSS of all proxy processes", f"{peak_rss / 2**20:.0f} MB", "300 MB", peak_rss <= 300 * 2**20)]
    if bound is not None:
        checks.append((f"wall time proxy/direct (spacing {args.spacing}s)", f"x{wall:.2f}", f"x{bound}", wall <= bound))
    if args.spacing >= 0.1:
        checks.append(("ttft p50 overhead", f"{overhead * 1000:+.0f} ms", "+50 ms", overhead <= 0.05))
    return [f"target    {name}: {got} (bound {want}): {'met' if ok else 'NOT MET'}" for name, got, want, ok in checks]


def report(env: Bench, rss_start: int, warm: List[Result], direct: Phase, proxied: Phase, probes: ProbeReport,
           batch: Optional[Phase], long_runs: List[LongRun]) -> str:
    args = env.args
    text_events = args.streams * args.events
    out = [header(args), f"warm-up   ok={sum(r.ok for r in warm)}/{len(warm)}",
           stream_line(direct), stream_line(proxied), ratio_line(direct, proxied),
           cpu_lines(direct, text_events), cpu_lines(proxied, text_events), probes.line()]
    if batch is not None:
        out.append(nonstream_line(batch))
    short_per_event = proxied.proxy_cpu / max(proxied.frames, 1)
    out += [long_lines(args, run, short_per_event) for run in long_runs]
    proxy_phases = [proxied, *([batch] if batch else []), *(run.phase for run in long_runs)]
    peak = max(phase.peak_rss for phase in proxy_phases)
    restarts = max(0, len(env.proxy_tree.seen_children) - args.workers)
    out.append(f"proxy rss: start {rss_start / 2**20:.0f}MB, peak {peak / 2**20:.0f}MB (master + {args.workers} "
               f"workers, summed); worker processes replaced during the run: {restarts}")
    out.append(proxy_log_summary(env.proxy))
    out += target_lines(args, direct, proxied, peak, probes, all_exact(proxy_phases))
    verdict = "ALL PROXY REPLIES EXACT" if all_exact(proxy_phases) else "SOME PROXY REPLIES FAILED"
    out.append(f"=== verdict: {verdict}" + ("" if probes.all_ok() else "; KEEP-ALIVE/DISCONNECT PROBES FAILED"))
    return "\n".join(out)


# --- main ----------------------------------------------------------------------------------------

def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams per phase")
    parser.add_argument("--events", type=int, default=None,
                        help="upstream text events per reply (default: as many as fill --duration)")
    parser.add_argument("--duration", type=float, default=2.0, metavar="S",
                        help="seconds of upstream events per reply when --events is not given: issue #4's "
                             "replies are 2 s long, 20 events at 100 ms spacing and 40 at 50 ms")
    parser.add_argument("--spacing", type=float, default=0.1, help="seconds between upstream events")
    parser.add_argument("--chunk", type=int, default=4, help="characters per upstream text event")
    parser.add_argument("--worker-class", choices=("gevent", "gthread"), default="gevent")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=100, help="threads per gthread worker")
    parser.add_argument("--connections", type=int, default=2000, help="WORKER_CONNECTIONS (gevent)")
    parser.add_argument("--ramp", type=float, default=0.0, metavar="S",
                        help="start the streams evenly over S seconds (0: all at once)")
    parser.add_argument("--probes", type=int, default=5,
                        help="keep-alive probes and disconnect probes run beside the proxy phase (each)")
    parser.add_argument("--nonstream", type=int, default=50, help="concurrent non-stream chats")
    parser.add_argument("--long", action="store_true", help="also run the long-reply case")
    parser.add_argument("--long-clients", type=int, default=20)
    parser.add_argument("--long-chars", type=int, default=16000)
    parser.add_argument("--long-events", type=int, default=1000)
    parser.add_argument("--long-spacing", type=float, default=0.01)
    parser.add_argument("--soak", type=int, default=0, metavar="N",
                        help="then N more rounds of --streams streams through the same proxy, with its RSS after each")
    parser.add_argument("--phase-timeout", type=float, default=300.0, help="seconds a phase may take")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy proxy.out and emulator.out here at exit")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="first wait up to S seconds for the machine to be >= 85%% idle")
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = max(1, round(args.duration / args.spacing))
    return args


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # Ctrl-C must stop us even when started in the background, where SIGINT arrives ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    nofile = raise_open_file_limit()
    if nofile < 2 * args.streams + 100:
        print(f"warning: open-file limit {nofile} is low for {args.streams} streams", file=sys.stderr)
    busy_before = wait_until_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
    with contextlib.ExitStack() as stack:
        redis_server, emulator, proxy = start_services(stack, args)
        env = Bench(args, emulator, proxy, ProcTree(proxy.process.pid), ProcTree(redis_server.process.pid),
                    mint_access_token("bench-direct", 86400))
        env.proxy_tree.children()
        rss_start = env.proxy_tree.rss()
        warm = warm_up(env)
        direct = direct_phase(env)
        proxied, probes = proxy_phase(env)
        batch = nonstream_phase(env) if args.nonstream > 0 else None
        long_runs = [long_phase(env, encoding) for encoding in ("cumulative", "v1")] if args.long else []
        text = report(env, rss_start, warm, direct, proxied, probes, batch, long_runs)
        if busy_before is not None:
            text = text.replace("\n", f"\nmachine busy before start: {100 * busy_before:.0f}% "
                                        f"(waited up to {args.wait_quiet:.0f}s for <= 15%)\n", 1)
        print(text, flush=True)
        soaked = soak(env) if args.soak > 0 else []
        proxy_phases = [proxied, *([batch] if batch else []), *(run.phase for run in long_runs), *soaked]
        return 0 if all_exact(proxy_phases) and probes.all_ok() else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the services were already stopped by the ExitStack
        print("bench_streams: interrupted", file=sys.stderr)
        sys.exit(130)
