"""The emulator's own endpoints, for tests: no auth, never recorded as requests."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, request

from .state import ConfigError, EmulatorState

control_bp = Blueprint("control", __name__, url_prefix="/_emulator")


def _state() -> EmulatorState:
    return current_app.extensions["emulator"]


@control_bp.get("/health")
def health():
    return jsonify(ok=True)


@control_bp.post("/reset")
def reset():
    _state().reset()
    _slow_paths().clear()
    return jsonify(ok=True)


def _slow_paths() -> dict:
    """request path -> [seconds to wait, requests left] (POST /_emulator/slow)."""
    return current_app.extensions.setdefault("emulator_slow_paths", {})


@control_bp.post("/slow")
def slow_path():
    """{"path": a request path, "delay": seconds, "times": requests}: the next `times` requests to
    `path` wait `delay` seconds before anything else (recording included), e.g. a slow prepare."""
    body = request.get_json(silent=True, force=True)
    body = body if isinstance(body, dict) else {}
    path, delay, times = body.get("path"), body.get("delay"), body.get("times", 1)
    if not isinstance(path, str) or not isinstance(delay, (int, float)) or not isinstance(times, int):
        return jsonify(detail="path (string), delay (seconds) and times (int) are required"), 400
    _slow_paths()[path] = [float(delay), times]
    return jsonify(ok=True)


@control_bp.before_app_request
def _slow_down():
    rule = _slow_paths().get(request.path)
    if rule is not None and rule[1] > 0:
        rule[1] -= 1
        time.sleep(rule[0])


@control_bp.get("/config")
def get_config():
    return jsonify(_state().config)


@control_bp.post("/config")
def set_config():
    try:
        return jsonify(_state().configure(request.get_json(silent=True, force=True)))
    except ConfigError as exc:
        return jsonify(detail=str(exc)), 400


@control_bp.get("/requests")
def requests_seen():
    return jsonify(_state().requests())


@control_bp.post("/revoke")
def revoke():
    body = request.get_json(silent=True, force=True)
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return jsonify(detail="access_token is required"), 400
    _state().revoke(token)
    return jsonify(ok=True)


@control_bp.get("/streams")
def streams():
    return jsonify(_state().streams())
