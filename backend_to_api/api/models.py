"""GET /v1/models: what the caller's account can use (model_catalog.py: the table's names and
aliases whose slug its model list has, the operator's own entries, the account's other slugs),
plus the GPTs of gpts.json, in OpenAI's list shape. Without a known account, the whole table."""
from __future__ import annotations

from typing import List, Optional

from flask import Blueprint, jsonify, request

from ..auth.tokens import Credentials, parse_bearer
from ..errors import ApiError, model_not_found
from . import client_credentials, services
from .images import IMAGE_MODEL_NAMES

CREATED = 1700000000  # a fixed date: clients only need an int


def models_blueprint(prefix: str) -> Blueprint:
    blueprint = Blueprint("models", __name__, url_prefix=prefix)
    blueprint.add_url_rule("/v1/models", view_func=list_models, methods=["GET"])
    blueprint.add_url_rule("/v1/models/<path:model>", view_func=get_model, methods=["GET"])
    return blueprint


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": CREATED, "owned_by": "backend-to-api"}


def _account() -> Optional[Credentials]:
    """Whose model list to show: the caller's token, or with api_keys the pool's first live one (401
    for a wrong key, as before); None (the table) when the open service is called without a token.
    Not the union of the pool's accounts: a chat resolves its model with the one account the rotation
    gives it (a name that account lacks is a 404, no fail-over), so a name only another account has
    would be listed and then fail on most requests."""
    svc = services()
    if svc.api_keys.enabled:
        client_credentials()
        return svc.chat.pool.first_live()
    header = request.headers.get("Authorization")
    if not header:
        return None
    try:
        return parse_bearer(header, request.headers.get("ChatGPT-Account-ID"))
    except ApiError:
        return None  # listing stays open, as it was: a malformed key just gets the table


def _names() -> List[str]:
    svc = services()
    names = svc.chat.catalog.names(_account()) + svc.gpts.names()
    # /v1/images/* serves OpenAI's image model names with today's image model unless an alias
    # claims one (api/images.py), whatever the account's chat models are.
    return list(dict.fromkeys(names + list(IMAGE_MODEL_NAMES)))  # a GPT may reuse a built-in name: listed once


def list_models():
    return jsonify({"object": "list", "data": [_model(name) for name in _names()]})


def get_model(model: str):
    # A table name is there in any spelling (gpt-5.2 = gpt-5-2), even one the account's list lacks.
    if model not in _names() and services().models.find(model) is None:
        raise model_not_found(model)
    return jsonify(_model(model))
