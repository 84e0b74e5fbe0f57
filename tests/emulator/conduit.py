"""The newer conversation flow (spec 2.5-2.7): ``/f/conversation/prepare`` x3, then ``/f/conversation``.

Each turn is known by its ``X-Oai-Turn-Trace-Id``. Its prepares must come in the order
none -> sent -> success, each carrying the previous answer's ``conduit_token`` (empty on the first),
and the post must carry the last token, once, with ``client_prepare_state: "success"``. Anything else
is refused 403 with a detail saying what was wrong, so a proxy that drops or mixes up tokens fails.

Config (state.py): ``plain_conversation_refused`` makes ``POST /conversation`` answer 404 naming
/f/conversation ("*" for every caller, else one token subject); ``fail_prepare`` makes the prepare
answer 500 the same way.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .backend import refuses, serve_conversation
from .state import EmulatorState

conduit_bp = Blueprint("conduit", __name__, url_prefix="/backend-api/f")


def _state() -> EmulatorState:
    return current_app.extensions["emulator"]


@conduit_bp.post("/conversation/prepare")
def prepare():
    state = _state()
    if refuses(state.config["fail_prepare"]):
        return jsonify(detail="prepare failed (emulator fail_prepare)"), 500
    body = request.get_json(silent=True, force=True)
    trace = request.headers.get("X-Oai-Turn-Trace-Id", "")
    if not isinstance(body, dict) or not trace:
        return jsonify(detail="a JSON body and X-Oai-Turn-Trace-Id are required"), 400
    token, problem = state.conduit.prepare(trace, body.get("client_prepare_state"),
                                           request.headers.get("X-Conduit-Token", ""))
    if token is None:
        return jsonify(detail=problem), 403
    return jsonify(status="ok", conduit_token=token)


@conduit_bp.post("/conversation")
def conversation():
    payload = request.get_json(silent=True, force=True)
    if not isinstance(payload, dict) or payload.get("client_prepare_state") != "success":
        return jsonify(detail="client_prepare_state must be 'success'"), 400
    problem = _state().conduit.redeem(request.headers.get("X-Oai-Turn-Trace-Id", ""),
                                      request.headers.get("X-Conduit-Token", ""))
    if problem:
        return jsonify(detail=problem), 403
    return serve_conversation(payload)
