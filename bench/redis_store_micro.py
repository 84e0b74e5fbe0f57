"""CPU per store call, against a real redis-server: what going through redis-py's public API costs.

    python bench/redis_store_micro.py [--calls 20000]

Prints microseconds of this process's CPU per call for: the pool's get_connection through redis-py's
argument-checking shim and (for comparison only) the method underneath, which store.py used to call
by unwrapping the shim; a GET through RedisStore and through FailoverStore (the worker's store); and
the rate limit's take_slot (RedisStore's script line and group commit) called sequentially and
from 200 threads at once. Starts its own redis-server (tests/conftest.py's RedisServer).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import redis  # noqa: E402

from backend_to_api.failover_store import FailoverStore  # noqa: E402
from backend_to_api.settings import RedisSettings  # noqa: E402
from backend_to_api.store import RedisStore, redis_client  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402


def cpu_per_call(calls: int, step: Callable[[], object]) -> float:
    began = time.process_time()
    for _ in range(calls):
        step()
    return (time.process_time() - began) / calls * 1e6


def concurrent_cpu_per_call(calls: int, step: Callable[[], object], threads: int = 200) -> float:
    each = max(1, calls // threads)
    gate = threading.Barrier(threads + 1)

    def run() -> None:
        gate.wait()
        for _ in range(each):
            step()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    began = time.process_time()
    gate.wait()
    for worker in workers:
        worker.join()
    return (time.process_time() - began) / (each * threads) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    calls = parser.parse_args().calls
    server = RedisServer(tempfile.mkdtemp(prefix="b2a-micro-")).start()
    try:
        settings = RedisSettings(host="127.0.0.1", port=server.port, db=9)
        client = redis_client(settings)
        pool = client.connection_pool
        shimmed = pool.get_connection
        underneath = getattr(redis.BlockingConnectionPool.get_connection, "__wrapped__", None)

        def checkout_shimmed() -> None:
            pool.release(shimmed())

        rows = [("pool checkout + release, public get_connection", cpu_per_call(calls, checkout_shimmed))]
        if underneath is not None:
            rows.append(("pool checkout + release, the unwrapped method (old)",
                         cpu_per_call(calls, lambda: pool.release(underneath(pool)))))
        shared = RedisStore(client)
        failover = FailoverStore(RedisStore(redis_client(settings)), "bench").start()
        shared.set_json("k", {"v": 1})
        rows.append(("GET through RedisStore", cpu_per_call(calls, lambda: shared.get_json("k"))))
        rows.append(("GET through FailoverStore", cpu_per_call(calls, lambda: failover.get_json("k"))))
        rows.append(("take_slot, sequential (RedisStore)",
                     cpu_per_call(calls, lambda: shared.take_slot("rate:bench", 0, 60.0, "cool:none"))))
        rows.append(("take_slot, sequential (FailoverStore)",
                     cpu_per_call(calls, lambda: failover.take_slot("rate:bench", 0, 60.0, "cool:none"))))
        rows.append(("take_slot, 200 threads at once (FailoverStore)",
                     concurrent_cpu_per_call(calls, lambda: failover.take_slot("rate:bench", 0, 60.0, "cool:none"))))
        for name, micros in rows:
            print(f"{name:<55} {micros:8.1f} us CPU per call")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
