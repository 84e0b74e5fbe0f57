"""Where the proxy's CPU goes under bench_streams' load: py-spy on the gunicorn workers, summarised.

    python bench/profile_proxy.py [--rate 250] [--raw FILE] [-- bench_streams arguments...]

Runs ``bench/bench_streams.py`` (any of its arguments after ``--``), attaches ``py-spy record
--subprocesses --gil`` to the proxy's gunicorn master as soon as it is up, and when the benchmark
ends prints the benchmark's own summary, then the workers' samples by pipeline stage and the
functions that hold the CPU themselves. Samples of worker start-up (imports, tiktoken's first load)
are left out, so the figures are the request and streaming work.

``--gil`` counts only samples where a worker holds the interpreter lock: time a worker waits in
epoll is not CPU. py-spy (``pip install py-spy``) may need ptrace rights (root, or
``--cap-add SYS_PTRACE`` in a container). Sampling slows the workers a little; compare shares
within one profile, not the bench figures of a profiled run with an unprofiled one.
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Counter, Iterable, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = 'main.py"'  # py-spy names each process by its command line; workers are main.py's children

# Samples taken while a worker starts, or loads a tokenizer on its first chat (not request work).
START_UP = ("load_wsgi", "get_encoding", "_drop_python_ranks", "Arbiter.")

# Pipeline stages, first match wins: a frame name (as py-spy prints it) that marks the stage.
STAGES: Sequence[Tuple[str, Sequence[str]]] = (
    ("upstream recv", ("UpstreamBody._receive",)),
    ("HTTP framing (h11)", ("UpstreamBody._unframed", "UpstreamBody._decoded")),
    ("SSE decoding", ("SSEDecoder.feed", "SSEDecoder.finish")),
    ("interpreting events", ("ReplyStream._interpret",)),
    ("the upstream call", ("ResumableCall.wait",)),
    ("reply reading, other", ("ReplyStream.next_events", "ReplyStream.batches")),
    ("rendering text", ("ReplyRenderer.render", "ReplyRenderer.finish")),
    ("building chunks", ("ChunkFactory.",)),
    ("writing to the client", ("Response.write", "write_chunk", "_ChunkSender")),
    ("rate limit (Redis)", ("RateLimiter.acquire",)),
    ("request set-up, other", ("Flask.__call__", "Parser.__next__", "Request.__init__")),
    ("werkzeug's iterator", ("ClosingIterator", "_iter_encoded")),
    ("gunicorn, other", ("GeventWorker.handle (", "ThreadWorker.handle (")),
)


def main(argv: Optional[List[str]] = None) -> int:
    args, bench_args = parse_args(argv)
    if shutil.which("py-spy") is None:
        print("profile_proxy: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    raw = args.raw or os.path.join(tempfile.mkdtemp(prefix="b2a-profile-"), "workers.txt")
    bench = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "bench_streams.py"), *bench_args],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    master = wait_for_master(bench.pid, bench)
    spy = None
    if master is not None:
        spy = subprocess.Popen(["py-spy", "record", "--subprocesses", "--gil", "-r", str(args.rate), "-f", "raw",
                                "-o", raw, "-p", str(master)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    output, _ = bench.communicate()
    print(output, end="")
    if spy is None:
        print("profile_proxy: the proxy never started", file=sys.stderr)
        return 1
    spy.wait(timeout=30)  # it stops by itself when the master exits
    if not os.path.exists(raw):
        print("profile_proxy: py-spy wrote nothing (ptrace not permitted?)", file=sys.stderr)
        return 1
    print(summary(read_samples(raw), args.top))
    print(f"raw samples: {raw}")
    return bench.returncode


def parse_args(argv: Optional[List[str]]) -> Tuple[argparse.Namespace, List[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    bench_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--raw", help="keep py-spy's raw output here")
    parser.add_argument("--top", type=int, default=25, help="how many functions to list")
    return parser.parse_args(own), bench_args


def wait_for_master(bench_pid: int, bench: subprocess.Popen, timeout: float = 60.0) -> Optional[int]:
    """The pid of the benchmark's child running main.py (the gunicorn master), once its workers exist."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and bench.poll() is None:
        for pid in children(bench_pid):
            if "main.py" in cmdline(pid) and children(pid):
                return pid
        time.sleep(0.05)
    return None


def children(pid: int) -> List[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
        except OSError:
            continue
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def read_samples(path: str) -> List[Tuple[List[str], int]]:
    """Worker stacks (root first, process frames dropped) with their sample counts."""
    samples = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack.count(WORKER) < 2 or any(mark in stack for mark in START_UP):
                continue  # the master itself, or a worker starting
            frames = [frame for frame in stack.split(";") if not frame.startswith("process ")]
            samples.append((frames, int(count)))
    return samples


def stage_of(frames: Iterable[str]) -> str:
    text = ";".join(frames)
    for name, marks in STAGES:
        if any(mark in text for mark in marks):
            return name
    return "gevent hub and the rest" if text else "native code (no Python frame)"


def summary(samples: List[Tuple[List[str], int]], top: int) -> str:
    total = sum(count for _, count in samples)
    if not total:
        return "profile: no worker samples"
    stages: Counter[str] = collections.Counter()
    own: Counter[str] = collections.Counter()
    for frames, count in samples:
        stages[stage_of(frames)] += count
        own[frames[-1] if frames else "(native)"] += count
    lines = [f"profile: {total} worker samples (request and streaming work; start-up left out)", "by stage:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in stages.most_common()]
    lines.append(f"functions holding the CPU themselves (top {top}):")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
