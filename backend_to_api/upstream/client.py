"""The one HTTP client for every outbound call: one pooled session per worker, explicit timeouts.

Lower-level failures (requests/urllib3 exceptions) are wrapped here into UpstreamError, so callers
catch one family.
"""
from __future__ import annotations

import http.client
import logging
import os
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Mapping, Optional

import requests
import urllib3
from requests.adapters import HTTPAdapter

from ..errors import UpstreamError, upstream_timeout, upstream_unreachable
from ..settings import Settings
from .errors import map_upstream_status, upstream_message

log = logging.getLogger(__name__)

_ENVIRONMENT_SETTINGS = tuple(
    name for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") for name in (base, base.upper())
) + ("NETRC",)

USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


@contextmanager
def wrap_transport_errors(what: str) -> Iterator[None]:
    """requests' exceptions -> UpstreamError (504 on timeouts, 502 otherwise)."""
    try:
        yield
    except (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError) as exc:
        raise upstream_timeout(what) from exc
    except (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        raise upstream_unreachable(f"{what}: {exc.__class__.__name__}") from exc


class UpstreamClient:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.upstream_root
        self.timeout = (settings.upstream_connect_timeout, settings.upstream_read_timeout)
        self.session = _session(settings)

    def headers(self, access_token: str, account_id: Optional[str] = None) -> Dict[str, str]:
        headers = {"Authorization": f"Bearer {access_token}", "User-Agent": USER_AGENT}
        if account_id:
            headers["Chatgpt-Account-Id"] = account_id
        return headers

    def open_conversation(
        self, payload: Mapping[str, Any], access_token: str, account_id: Optional[str] = None
    ) -> requests.Response:
        """POST the conversation; returns the open streaming response, or raises UpstreamError."""
        headers = self.headers(access_token, account_id)
        headers["Accept"] = "text/event-stream"
        with wrap_transport_errors("conversation"):
            response = self.session.post(
                f"{self.root}/backend-api/conversation", json=payload, headers=headers,
                stream=True, timeout=self.timeout,
            )
        if response.status_code != 200:
            raise self._failure(response)
        if _is_document(response.headers.get("Content-Type", "")):
            raise self._not_a_stream(response)
        return response

    def hide_conversation(self, conversation_id: str, access_token: str, account_id: Optional[str] = None) -> bool:
        with wrap_transport_errors("hide conversation"):
            response = self.session.patch(
                f"{self.root}/backend-api/conversation/{conversation_id}", json={"is_visible": False},
                headers=self.headers(access_token, account_id), timeout=self.timeout,
            )
        response.close()
        return response.status_code == 200

    def get(self, path: str, what: str, access_token: str, account_id: Optional[str] = None) -> requests.Response:
        """A small backend-api GET (e.g. GPT info); the caller reads status and body."""
        with wrap_transport_errors(what):
            return self.session.get(f"{self.root}{path}", headers=self.headers(access_token, account_id),
                                    timeout=(self.timeout[0], 60))

    def post(self, url: str, what: str, **kwargs: Any) -> requests.Response:
        """A plain POST to any URL (token refreshers), with our timeouts and error wrapping."""
        kwargs.setdefault("timeout", (self.timeout[0], 60))
        with wrap_transport_errors(what):
            return self.session.post(url, **kwargs)

    def _failure(self, response: requests.Response) -> UpstreamError:
        error = map_upstream_status(response.status_code, _short_body(response), response.headers)
        log.info("upstream answered %s: %s", response.status_code, error.message)
        return error

    def _not_a_stream(self, response: requests.Response) -> UpstreamError:
        # e.g. a JSON error with status 200, or a websocket hand-off ({"wss_url": ...}) we don't speak
        content_type = response.headers.get("Content-Type", "")
        message = upstream_message(_short_body(response), content_type)
        return UpstreamError(502, f"The upstream answered with {content_type or 'no content type'} instead of "
                                  f"an event stream: {message}", 200, code="upstream_not_a_stream")


def _is_document(content_type: str) -> bool:
    """A JSON or HTML answer with status 200 is not a reply stream (a JSON error, a websocket
    hand-off, a login page). Anything else, a missing Content-Type included, is read as SSE: some
    mirrors label their streams loosely."""
    kind = content_type.split(";")[0].strip().lower()
    return kind in ("application/json", "text/html") or kind.endswith("+json")


def _short_body(response: requests.Response) -> str:
    """The first 64 KiB of a body we only need for an error message."""
    try:
        with wrap_transport_errors("reading the error body"):
            return response.raw.read(64 * 1024, decode_content=True).decode("utf-8", "replace")
    except UpstreamError:
        return ""
    finally:
        response.close()


def _session(settings: Settings) -> requests.Session:
    session = requests.Session()
    # One pool per worker, large enough that concurrent streams never wait for a connection.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(settings.worker_connections, 10), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if settings.proxy:
        session.proxies = {"http": settings.proxy, "https": settings.proxy}
    # requests re-reads proxy and CA settings from the environment on every call (~5% of a stream's
    # start-up CPU): take the CA bundle once here, and keep the per-call lookup only for proxies.
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = any(os.environ.get(name) for name in _ENVIRONMENT_SETTINGS)
    return session
