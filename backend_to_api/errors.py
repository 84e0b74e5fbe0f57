"""Errors, and their one mapping to OpenAI's error envelope.

    ApiError                  anything we answer with an HTTP error: status + OpenAI error fields
     +-- UpstreamError        the backend-api (or the token refresher) failed; carries what it said

Clients read ``body["error"]`` (openai SDKs, one-api, NextChat), so every error path, the 404/405/500
catch-alls included, answers ``{"error": {"message", "type", "param", "code"}}``. Statuses follow
openai-compat.md item 21: one-api disables a channel on 401 and retries on 429/5xx, so 401 is kept
for a key that is really dead.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Optional


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: Optional[str] = None,
        param: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
        # Set once the upstream accepted the conversation POST this error ended: the turn is in the
        # account's history, so posting it again with another pool token would duplicate it.
        self.turn_posted = False

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class ClientGone(Exception):
    """The client closed its connection; the reply is abandoned (answered 499, which nobody reads)."""


class UpstreamError(ApiError):
    """The upstream refused or failed. ``upstream_status`` is what it answered (None: no answer)."""

    def __init__(self, status: int, message: str, upstream_status: Optional[int] = None, **kwargs: Any) -> None:
        kwargs.setdefault("type_", "upstream_error")
        super().__init__(status, message, **kwargs)
        self.upstream_status = upstream_status


def stream_failure(exc: Exception, logger: logging.Logger, what: str) -> ApiError:
    """The error a stream that has already answered 200 ends with (an error frame or
    ``response.failed``, never a dropped connection): an ApiError as it is; anything else is a bug,
    logged with its traceback and told to the client as a 502 internal_error."""
    if isinstance(exc, ApiError):
        return exc
    logger.error("%s failed", what, exc_info=exc)
    return UpstreamError(502, "Rendering the reply failed.", code="internal_error")


def retry_headers(seconds: float) -> dict:
    """Retry-After, plus x-should-retry: false when the wait is long: the openai SDKs retry 429s at
    once otherwise, and every retry here is a real web conversation spent for nothing."""
    retry_after = max(1, math.ceil(seconds))
    headers = {"Retry-After": str(retry_after)}
    if retry_after > 60:
        headers["x-should-retry"] = "false"
    return headers


def bad_request(message: str, param: Optional[str] = None, code: Optional[str] = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", code=code, param=param)


def content_blocked(message: str) -> ApiError:
    """A turn the upstream blocked on content policy: OpenAI's answer to it, a 400 (chat and stream)."""
    return bad_request(message, code="content_policy_violation")


def unauthorized(message: str, code: Optional[str] = None) -> ApiError:
    return ApiError(401, message, "authentication_error", code=code)


def model_not_found(model: str) -> ApiError:
    # 404, never 401: one-api disables a channel on 401 (openai-compat.md item 21).
    return ApiError(
        404, f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error", code="model_not_found", param="model",
    )


def upstream_timeout(what: str) -> UpstreamError:
    return UpstreamError(504, f"The upstream did not answer in time ({what}).", code="upstream_timeout")


def upstream_unreachable(detail: str) -> UpstreamError:
    return UpstreamError(502, f"Could not reach the upstream: {detail}", code="upstream_unreachable")


def out_of_open_files(what: str) -> UpstreamError:
    """Our own limit, not the upstream's: 503, worth a retry a moment later."""
    return UpstreamError(503, f"This server has no file descriptor left for {what} (its open-file limit); "
                              "try again shortly.", code="server_overloaded", type_="server_error",
                         headers=retry_headers(1))


def empty_reply() -> UpstreamError:
    return UpstreamError(502, "The upstream returned an empty reply.", code="empty_reply",
                         headers={"x-should-retry": "true"})
