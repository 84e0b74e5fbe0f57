"""GET /v1/models: every configured name and alias (GPTs from gpts.json included), in OpenAI's list shape."""
from __future__ import annotations

from flask import Blueprint, jsonify

from ..errors import model_not_found
from . import require_api_key, services

CREATED = 1700000000  # a fixed date: clients only need an int


def models_blueprint(prefix: str) -> Blueprint:
    blueprint = Blueprint("models", __name__, url_prefix=prefix)
    blueprint.add_url_rule("/v1/models", view_func=list_models, methods=["GET"])
    blueprint.add_url_rule("/v1/models/<path:model>", view_func=get_model, methods=["GET"])
    return blueprint


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": CREATED, "owned_by": "backend-to-api"}


def _names() -> list:
    svc = services()
    names = svc.models.names() + svc.gpts.names()
    # /v1/images/generations serves dall-e-3 through gpt-4o when no alias claims it (api/images.py).
    if "dall-e-3" not in names and svc.models.family_names("gpt-4o"):
        names.append("dall-e-3")
    return names


def list_models():
    require_api_key()
    return jsonify({"object": "list", "data": [_model(name) for name in _names()]})


def get_model(model: str):
    require_api_key()
    if model not in _names():
        raise model_not_found(model)
    return jsonify(_model(model))
