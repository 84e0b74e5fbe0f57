"""Every error leaves as OpenAI's envelope, the 404/405/500 catch-alls included."""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from ..errors import ApiError, ClientGone, UpstreamError

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"}


def error_response(error: ApiError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        if isinstance(error, UpstreamError):
            app.extensions["backend_to_api"].metrics.count_upstream_error(error.code)
        return error_response(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = error.description or error.name
        if status == 404:
            message = "Unknown path. This server offers /v1/chat/completions and /v1/models."
        kind = "invalid_request_error" if status < 500 else "server_error"
        return error_response(ApiError(status, message, kind, code=_HTTP_CODES.get(status)))

    @app.errorhandler(ClientGone)
    def client_gone(_: ClientGone) -> Response:
        return Response(status=499)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(ApiError(500, "Internal server error.", "server_error", code="internal_error"))
