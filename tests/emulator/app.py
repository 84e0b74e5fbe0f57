"""The emulated upstream as a Flask app: `create_emulator_app()` builds a fresh one.

All state lives in one `EmulatorState` kept in `app.extensions["emulator"]`, so two apps (or two
tests) never share anything.
"""
from __future__ import annotations

import time

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from .account_models import account_models_bp
from .backend import authorize, backend_bp
from .conduit import conduit_bp
from .control import control_bp
from .downloads import downloads_bp
from .files import files_bp
from .handoff import HandOffServer, handoff_bp
from .pictures import pictures_bp
from .refresh import refresh_bp
from .state import EmulatorState
from .voice import SpeechMessages, voice_bp

CONTROL_PREFIX = "/_emulator/"


def create_emulator_app(config: dict | None = None) -> Flask:
    """`config` overrides the defaults (token_ttl, refresh_delay); reset returns to it."""
    app = Flask("tests.emulator")
    app.json.ensure_ascii = False  # raw UTF-8 on the wire, as upstream sends it
    app.json.sort_keys = False
    app.extensions["emulator"] = EmulatorState(config)
    app.extensions["emulator_speech"] = SpeechMessages()  # voice.py: what synthesize may read
    for blueprint in (refresh_bp, backend_bp, files_bp, downloads_bp, control_bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(voice_bp)
    app.register_blueprint(account_models_bp)
    app.register_blueprint(pictures_bp)
    app.register_blueprint(conduit_bp)
    app.extensions["emulator_handoff"] = app.extensions["emulator"].handoff = HandOffServer()
    app.register_blueprint(handoff_bp)
    app.before_request(_record_and_authorize)
    app.register_error_handler(HTTPException, _http_exception_as_json)
    return app


def _record_and_authorize():
    if request.path.startswith(CONTROL_PREFIX):
        return None
    state: EmulatorState = current_app.extensions["emulator"]
    state.record_request(_request_record())
    if request.path.startswith("/backend-api/"):
        return authorize(state)
    return None


def _request_record() -> dict:
    # force: like the real upstream, a JSON body without a JSON content type still counts.
    return {"method": request.method, "path": request.path, "query": request.args.to_dict(),
            "headers": dict(request.headers), "json": request.get_json(silent=True, force=True),
            "form": request.form.to_dict(), "time": time.time()}


def _http_exception_as_json(error: HTTPException):
    return jsonify(detail=error.name), error.code
