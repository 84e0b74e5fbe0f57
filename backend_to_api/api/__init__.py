"""HTTP layer: one blueprint per concern; each reads the shared Services from the app."""
from __future__ import annotations

from typing import Any, Optional

from flask import current_app, request

from ..auth.tokens import Credentials, parse_bearer
from ..errors import ApiError, bad_request
from ..services import Services


def services() -> Services:
    return current_app.extensions["backend_to_api"]


def json_body() -> Any:
    """The request's JSON; malformed or absurdly nested JSON is a 400 (werkzeug only turns
    ValueError into None, and a 1000-deep array raises RecursionError in the decoder)."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        body = None
    if body is None:
        raise bad_request("The request body must be valid JSON (Content-Type: application/json).")
    return body


def client_credentials() -> Optional[Credentials]:
    """The client's ChatGPT credentials, or None when the service's own keys and pool are in use
    (then the presented key must be one of ``api_keys``: 401 otherwise)."""
    svc = services()
    header = request.headers.get("Authorization")
    if not svc.api_keys.enabled:
        return parse_bearer(header, request.headers.get("ChatGPT-Account-ID"))
    parse_bearer(header)  # the same 401s for a missing or malformed header
    svc.api_keys.check(header[7:].strip())
    if not svc.chat.pool:
        raise ApiError(503, "api_keys is set but token_pool is empty.", "server_error", code="pool_not_configured")
    return None


def require_api_key() -> None:
    """Routes other than chat and images (models) are open unless the service has its own keys."""
    if services().api_keys.enabled:
        client_credentials()
