"""Turn an upstream HTTP failure into the one UpstreamError the client will see.

Status choices (openai-compat.md item 21): one-api retries 429/5xx and disables a channel on 401;
the openai SDKs retry 408/409/429/5xx twice unless told ``x-should-retry: false``, and every retry
here is a real web conversation, so we say "don't" where a retry can only burn quota.
"""
from __future__ import annotations

import errno
import http.client
import json
import logging
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional

import requests
import urllib3

from ..errors import UpstreamError, out_of_open_files, retry_headers, upstream_timeout, upstream_unreachable

log = logging.getLogger(__name__)

NO_RETRY = {"x-should-retry": "false"}


@contextmanager
def wrap_transport_errors(what: str) -> Iterator[None]:
    """requests' and urllib3's exceptions -> UpstreamError (504 on timeouts, 502 otherwise; 503 when
    it is our own open-file limit that failed the connection)."""
    try:
        yield
    except (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        raise transport_error(what, exc) from exc


def transport_error(what: str, exc: BaseException) -> UpstreamError:
    if _out_of_descriptors(exc):
        log.warning("out of open files (%s): raise the open-file limit or lower worker_connections", what)
        return out_of_open_files(what)
    timed_out = isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError))
    # urllib3 makes a refused or failed connection a kind of ConnectTimeoutError: not a timeout here.
    if timed_out and not isinstance(exc, urllib3.exceptions.NewConnectionError):
        return upstream_timeout(what)
    return upstream_unreachable(f"{what}: {exc.__class__.__name__}")


def _out_of_descriptors(exc: BaseException) -> bool:
    """EMFILE/ENFILE anywhere in the chain (requests and urllib3 wrap the OSError of socket())."""
    seen = 0
    current: Optional[BaseException] = exc
    while current is not None and seen < 8:
        if isinstance(current, OSError) and current.errno in (errno.EMFILE, errno.ENFILE):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def upstream_message(body: str, content_type: str = "") -> str:
    """The human part of an upstream error body: ``detail`` (string or .message), else a summary."""
    detail = _detail(body)
    if isinstance(detail, Mapping):
        detail = detail.get("message") or detail.get("code")
    if isinstance(detail, str) and detail.strip():
        return detail.strip()[:500]
    if "html" in content_type.lower() or body.lstrip().startswith("<"):
        return "the upstream answered with an HTML page (often a Cloudflare or login challenge)"
    text = " ".join(body.split())
    return text[:300] if text else "no details given"


def _detail(body: str) -> Any:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, Mapping):
        return None
    for key in ("detail", "error", "message"):
        if data.get(key):
            return data[key]
    return None


def retry_after_seconds(body: str, headers: Mapping[str, str]) -> Optional[int]:
    detail = _detail(body)
    if isinstance(detail, Mapping) and isinstance(detail.get("clears_in"), (int, float)):
        return max(1, int(detail["clears_in"]))
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value and str(value).strip().isdigit():
        return max(1, int(value))
    return None


def error_code(body: str) -> Optional[str]:
    detail = _detail(body)
    if isinstance(detail, Mapping) and isinstance(detail.get("code"), str):
        return detail["code"]
    return None


def map_upstream_status(status: int, body: str, headers: Mapping[str, str]) -> UpstreamError:
    """Map a non-2xx answer of the conversation (or another backend-api) call."""
    message = upstream_message(body, headers.get("Content-Type", ""))
    if status == 401:
        return UpstreamError(401, f"The upstream rejected the access token: {message}", status,
                             type_="authentication_error", code="invalid_api_key", headers=NO_RETRY)
    if status == 429:
        return _rate_limited(body, headers, message)
    if status == 413:
        return UpstreamError(400, f"The conversation is too long for the upstream: {message}", status,
                             type_="invalid_request_error", code="context_length_exceeded", headers=NO_RETRY)
    if status in (400, 422):
        return UpstreamError(400, f"The upstream refused the request: {message}", status,
                             type_="invalid_request_error", code=error_code(body), headers=NO_RETRY)
    if status == 403:
        return UpstreamError(503, f"The upstream refused access (HTTP 403): {message}", status,
                             code=error_code(body) or "upstream_forbidden")
    if status == 404:
        return UpstreamError(502, f"The upstream answered 404 (check upstream_base_url and "
                                  f"upstream_api_prefix): {message}", status, code="upstream_not_found")
    return UpstreamError(502, f"The upstream failed with HTTP {status}: {message}", status,
                         code=error_code(body) or "upstream_error")


def _rate_limited(body: str, headers: Mapping[str, str], message: str) -> UpstreamError:
    seconds = retry_after_seconds(body, headers)
    extra = retry_headers(seconds) if seconds else {}
    return UpstreamError(429, f"Upstream rate limit: {message}", 429, type_="rate_limit_exceeded",
                         code=error_code(body) or "rate_limit_exceeded", headers=extra)


def short_error_body(response: requests.Response, limit: int = 64 * 1024) -> str:
    """The first 64 KiB of a small call's body that we only need for an error message (then closed)."""
    try:
        with wrap_transport_errors("reading the error body"):
            return response.raw.read(limit, decode_content=True).decode("utf-8", "replace")
    except UpstreamError:
        return ""
    finally:
        response.close()
