"""Prometheus metrics, correct across gunicorn workers.

prometheus_client's multiprocess mode: every worker writes its samples to files in
PROMETHEUS_MULTIPROC_DIR and /metrics aggregates them, so a scrape that lands on any worker sees the
whole instance. main.py points that variable at a fresh directory before the workers start; without it
(tests calling create_app directly) the metrics are simply per process.
"""
from __future__ import annotations

import os
from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

# Every label value is one more time series, kept by Prometheus for good: label values come from a
# fixed set, never from what a client or the upstream sends. An upstream's own error code (its JSON
# body's detail.code, an SSE error event's code) reaches the client in the error body, but counts
# here as "other" unless it is one of these, ours. (Models: app._count_request; routes: the URL
# rule, access_log.py.)
UPSTREAM_ERROR_KINDS = frozenset({
    "bad_stream", "context_length_exceeded", "empty_reply", "gizmo_busy", "gizmo_fetch_failed",
    "gizmo_key_failed", "gizmo_key_missing", "incomplete_stream", "internal_error", "invalid_api_key",
    "midstream", "model_not_found", "rate_limit_exceeded", "refresh_busy", "refresh_unavailable",
    "server_overloaded", "upload_failed", "upstream_disconnected", "upstream_error", "upstream_forbidden",
    "upstream_handoff_failed", "upstream_not_a_stream", "upstream_not_found", "upstream_timeout", "upstream_unreachable",
})
OTHER = "other"


def upstream_error_kind(code: Optional[str]) -> str:
    if not code:
        return "upstream_error"
    return code if code in UPSTREAM_ERROR_KINDS else OTHER


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

    def count_upstream_error(self, code: Optional[str]) -> None:
        self.upstream_errors.labels(upstream_error_kind(code)).inc()

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
