"""CPU per request of Flask + werkzeug + gunicorn (gevent) alone, on this machine.

    python bench/framework_floor.py [--requests 3000] [--concurrency 50]

Serves bench/floor_app.py (an endpoint that reads the JSON body and streams two SSE frames, and
does nothing else) with one gevent worker, sends it streamed chat requests the way bench_streams'
load generator does (a new connection each), and prints the worker's CPU per request. It is a
lower bound for the proxy's own set-up cost per request, and with it for what a burst of starts
must add to the time to first token: the median of 1000 simultaneous starts waits for about 500
set-ups, spread over the machine's CPUs.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.bench_streams import ProcTree, post  # noqa: E402  (patches gevent in first)
from tests.conftest import free_port, stop, wait_until  # noqa: E402

import gevent  # noqa: E402

BODY = b'{"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--worker-connections", "1000",
         "--log-level", "warning", "-b", f"127.0.0.1:{port}", "bench.floor_app:app"],
        cwd=ROOT, start_new_session=True)
    try:
        wait_until(lambda: one_request(port), what="floor app")
        tree = ProcTree(server.pid)
        one_round(port, args.requests // 5, args.concurrency)  # warm-up: imports, caches
        before = tree.cpu()
        one_round(port, args.requests, args.concurrency)
        per_request = (tree.cpu() - before) / args.requests
    finally:
        stop(server)
    cpus = os.cpu_count() or 1
    print(f"framework floor: {per_request * 1000:.2f} ms of CPU per streamed request "
          f"(Flask + gunicorn gevent, 1 worker, {args.requests} requests, {args.concurrency} at a time)")
    print(f"  so 500 set-ups, the median of a 1000-start burst, take at least "
          f"{500 * per_request * 1000 / cpus:.0f} ms on {cpus} CPUs (added to the wait of that median when "
          f"the upstream's own work already keeps every CPU busy, as in bench_streams)")
    return 0


def one_request(port: int) -> bool:
    reply = post(port, "/v1/chat/completions", BODY, {"Authorization": "Bearer floor"})
    try:
        return reply.status == 200 and reply.read().endswith(b"data: [DONE]\n\n")
    finally:
        reply.close()


def one_round(port: int, count: int, concurrency: int) -> None:
    def client(share: int) -> None:
        for _ in range(share):
            if not one_request(port):
                raise RuntimeError("the floor app answered wrongly")

    clients = [gevent.spawn(client, count // concurrency) for _ in range(concurrency)]
    gevent.joinall(clients, raise_error=True)


if __name__ == "__main__":
    sys.exit(main())
