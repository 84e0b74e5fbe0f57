"""Prometheus metrics, correct across gunicorn workers.

prometheus_client's multiprocess mode: every worker writes its samples to files in
PROMETHEUS_MULTIPROC_DIR and /metrics aggregates them, so a scrape that lands on any worker sees the
whole instance. main.py points that variable at a fresh directory before the workers start; without it
(tests calling create_app directly) the metrics are simply per process.
"""
from __future__ import annotations

import os
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The service's metrics; one instance per worker, passed where it is observed."""

    def __init__(self) -> None:
        # A registry of our own: create_app may run more than once in a process (tests).
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("b2a_requests_total", "HTTP requests by route, model and status",
                                ["route", "model", "status"], registry=r)
        self.active_streams = Gauge("b2a_active_streams", "Streams being answered right now",
                                    multiprocess_mode="livesum", registry=r)
        self.upstream_first_event = Histogram("b2a_upstream_first_event_seconds",
                                              "Time from the upstream call to its first real event",
                                              buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_duration = Histogram("b2a_upstream_reply_seconds", "Time until the upstream reply ended",
                                           buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_errors = Counter("b2a_upstream_errors_total", "Upstream failures by kind", ["kind"], registry=r)
        self.token_refreshes = Counter("b2a_token_refreshes_total", "Refresh-token exchanges by outcome",
                                       ["outcome"], registry=r)
        self.token_cache_hits = Counter("b2a_token_cache_hits_total", "Access tokens served from the shared cache",
                                        registry=r)

    def render(self) -> bytes:
        """The exposition text: aggregated over all workers when multiprocess mode is on."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit hook: drop a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
