"""gunicorn options derived from the settings (used by main.py and gunicorn.conf.py alike).

gevent is the default worker: a reply streams for seconds to minutes, and a greenlet per stream
holds thousands of them in one process for a few KB each, where gthread needs an OS thread each.
"""
from __future__ import annotations

from typing import Any, Dict

from .settings import Settings


def gunicorn_options(settings: Settings) -> Dict[str, Any]:
    options: Dict[str, Any] = {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.process_workers,
        "worker_class": settings.worker_class,
        # gevent/gthread workers heartbeat from their own loop, so this never cuts a long stream;
        # it only replaces a worker whose loop is stuck.
        "timeout": 120,
        "graceful_timeout": 30,
        "keepalive": 75,
        "accesslog": None,  # we write our own access line (request id, model, ttfb, duration)
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "preload_app": False,  # the app must be imported after gevent patches the worker
    }
    if settings.worker_class == "gevent":
        options["worker_connections"] = settings.worker_connections
    else:
        options["threads"] = settings.process_threads
    return options
