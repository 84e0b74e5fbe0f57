"""GET /healthz (the process answers) and GET /readyz (config loaded, shared state usable)."""
from __future__ import annotations

from flask import Blueprint, jsonify

from . import services

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@health.get("/readyz")
def readyz():
    store = services().store
    reachable = store.ping()
    # A Redis we were told to use but cannot reach is not ready; running on the in-process
    # store because Redis was absent at start is a known, logged state, and ready.
    body = {"status": "ready" if reachable else "unavailable", "store": store.kind, "store_reachable": reachable}
    return jsonify(body), (200 if reachable else 503)
