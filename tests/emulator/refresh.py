"""Token refresh endpoints: xyhelper's /applelogin and OpenAI's /oauth/token.

The refresh token's prefix picks the outcome, so a test chooses a failure by naming its token:
"bad-..." is refused (401), "bad200-..." gets a 200 without a token, "slow-..." answers after
the configured `refresh_delay`, anything else gets a fresh access token whose subject is the
refresh token.
"""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, request

from .tokens import mint_access_token

refresh_bp = Blueprint("refresh", __name__)
_OAUTH_FIELDS = ("redirect_uri", "grant_type", "client_id", "refresh_token")
_OAUTH_SCOPE = "openid email profile offline_access model.request model.read organization.read"


@refresh_bp.post("/applelogin")
def applelogin():
    refresh_token = request.form.get("refresh_token")
    if not refresh_token:
        return jsonify(detail="refresh_token is required"), 400
    return _refresh(refresh_token, oauth=False)


@refresh_bp.post("/oauth/token")
def oauth_token():
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict) or any(not body.get(name) for name in _OAUTH_FIELDS):
        return jsonify(error="invalid_request"), 400
    if body["grant_type"] != "refresh_token":
        return jsonify(error="unsupported_grant_type"), 400
    return _refresh(body["refresh_token"], oauth=True)


def _refresh(refresh_token: str, oauth: bool):
    config = current_app.extensions["emulator"].config
    if refresh_token.startswith("bad-"):
        return jsonify(detail="invalid refresh_token"), 401
    if refresh_token.startswith("bad200-"):
        return jsonify(detail="no token"), 200
    if refresh_token.startswith("slow-"):
        time.sleep(config["refresh_delay"])
    ttl = config["token_ttl"]
    answer = {"access_token": mint_access_token(refresh_token, ttl), "expires_in": ttl}
    answer.update(refresh_token=refresh_token, token_type="Bearer")
    if oauth:
        answer.update(id_token=mint_access_token(refresh_token, ttl), scope=_OAUTH_SCOPE)
    return jsonify(answer)
