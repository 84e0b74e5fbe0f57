"""gunicorn options derived from the settings (used by main.py and gunicorn.conf.py alike).

gevent is the default worker: a reply streams for seconds to minutes, and a greenlet per stream
holds thousands of them in one process for a few KB each, where gthread needs an OS thread each.
"""
from __future__ import annotations

import gc
import glob
import logging
import os
import resource
import shutil
import tempfile
from typing import Any, Dict, MutableMapping

from .settings import Settings

METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# config.json's worker_class -> what gunicorn loads ("gevent" is gunicorn's, with a cheaper chunk write)
WORKER_CLASSES = {"gevent": "backend_to_api.stream_worker.StreamingGeventWorker"}
OWNED_DIR_VARIABLE = "B2A_OWNED_METRICS_DIR"
# gunicorn's own error/access logs scrub tokens like ours (gunicorn_logger.py)
GUNICORN_LOGGER = "backend_to_api.gunicorn_logger.ScrubbingLogger"

log = logging.getLogger(__name__)


def prepare_master(environ: MutableMapping[str, str]) -> None:
    """What the master sets in its environment before gunicorn forks workers (main.py and
    gunicorn.conf.py both start here)."""
    prepare_metrics_dir(environ)
    prefer_ares_resolver(environ)


def prepare_metrics_dir(environ: MutableMapping[str, str]) -> str:
    """Give the workers one shared, empty directory for their metric samples (prometheus_client's
    multiprocess mode reads the variable when it is imported, so this runs in the master first).
    Samples left by an earlier run would be counted again: they are removed."""
    path = environ.get(METRICS_DIR_VARIABLE)
    if not path:
        path = tempfile.mkdtemp(prefix="b2a-metrics-")
        environ[OWNED_DIR_VARIABLE] = path  # ours to remove when the master exits
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.unlink(stale)
    environ[METRICS_DIR_VARIABLE] = path
    return path


def prefer_ares_resolver(environ: MutableMapping[str, str]) -> None:
    """Name lookups in gevent workers through c-ares (bundled with gevent), unless GEVENT_RESOLVER
    says otherwise. gevent's default hands every lookup, even of "127.0.0.1", to a thread pool:
    ~0.5 ms of CPU per new upstream or Redis connection under load, ~10% of a burst of new streams."""
    try:
        import gevent.resolver.ares  # noqa: F401  (absent from some source builds of gevent)
    except ImportError:
        return
    environ.setdefault("GEVENT_RESOLVER", "ares")


# Young-generation collections every 20,000 net new objects instead of 700. A worker holding
# hundreds of streams keeps each one's state alive for seconds, so with the default it collected
# ~70 times during bench_streams' 1000-stream phase and spent ~0.11 s of its ~2.5 s of CPU (~4%)
# walking live objects; with these thresholds, 2 collections and ~0.03 s (measured with
# gc.callbacks). Peak RSS of the proxy stayed at 254-258 MB.
WORKER_GC_THRESHOLDS = (20_000, 10, 10)


# Besides two sockets per stream: the Redis pool, log files, metric files, tokenizer files.
OTHER_OPEN_FILES = 64


def prepare_worker(settings: Settings) -> None:
    """Once in each serving worker, before it accepts connections."""
    from .render.usage import preload

    tune_worker_gc()
    raise_open_file_limit(settings)
    preload()


def tune_worker_gc() -> None:
    gc.set_threshold(*WORKER_GC_THRESHOLDS)
    log.info("garbage collection thresholds %s", gc.get_threshold())


def raise_open_file_limit(settings: Settings) -> None:
    """Every stream holds two sockets, the client's and the upstream's. A shell's usual soft limit
    of 1024 open files would stop a worker at ~480 streams, with "Too many open files" on every
    connection beyond; raise the soft limit to what worker_connections needs (the hard limit
    allowing)."""
    reserve = settings.redis.pool_size + OTHER_OPEN_FILES
    needed = 2 * settings.worker_connections + reserve
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft < needed:
        log.warning("open files are limited to %d (hard limit): a worker can hold about %d streams, not the "
                    "%d of worker_connections; raise the hard limit (ulimit -Hn, or nofile in docker-compose)",
                    soft, max(0, (soft - reserve) // 2), settings.worker_connections)
    else:
        log.info("open files limit raised to %d for %d connections", soft, settings.worker_connections)


def on_exit(server: Any) -> None:
    """gunicorn hook, master only (workers must not remove what the others still write to)."""
    path = os.environ.get(OWNED_DIR_VARIABLE)
    if path:
        shutil.rmtree(path, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: a dead worker's live gauges (active streams) must not linger."""
    from .metrics import worker_exited

    worker_exited(worker.pid)


def gunicorn_options(settings: Settings) -> Dict[str, Any]:
    options: Dict[str, Any] = {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.process_workers,
        "worker_class": WORKER_CLASSES.get(settings.worker_class, settings.worker_class),
        # gevent/gthread workers heartbeat from their own loop, so this never cuts a long stream;
        # it only replaces a worker whose loop is stuck.
        "timeout": 120,
        "graceful_timeout": 30,
        "keepalive": 75,
        "accesslog": None,  # we write our own access line (request id, model, ttfb, duration)
        "errorlog": "-",
        "logger_class": GUNICORN_LOGGER,
        "loglevel": settings.log_level.lower(),
        "preload_app": False,  # the app must be imported after gevent patches the worker
        "child_exit": child_exit,
        "on_exit": on_exit,
    }
    if settings.worker_class == "gevent":
        options["worker_connections"] = settings.worker_connections
    else:
        options["threads"] = settings.process_threads
    return options
