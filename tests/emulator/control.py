"""The emulator's own endpoints, for tests: no auth, never recorded as requests."""
from __future__ import annotations

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
    return jsonify(ok=True)


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
