"""The one HTTP client for every outbound call: pooled connections per worker, explicit timeouts.

Lower-level failures (requests/urllib3 exceptions) are wrapped into UpstreamError
(``errors.wrap_transport_errors``), so callers catch one family.

The conversation call, made for every chat, is our own HTTP/1.1 exchange (``http1.py``, h11 over
our own socket), straight or through the outbound proxy (``proxy_route.py``): requests and urllib3
add ~1 ms of Python per call (preparing, cookies, hooks, environment lookups, email-based header
parsing) that a fixed POST to one host does not need.
"""
from __future__ import annotations

import logging
import os
import uuid
from typing import Any, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

import certifi
import requests
from requests.adapters import HTTPAdapter

from .. import jsonbytes
from ..errors import UpstreamError
from ..settings import Settings
from .body import UpstreamBody
from .conduit import ConduitPreparer, FlowChoice, conduit_body
from .errors import map_upstream_status, upstream_message, wrap_transport_errors
from .http1 import ConnectionPool
from .proxy_route import ProxyRoute, proxy_route, proxy_url
from .steps import Deadline, Steps
from .ws_answer import WebSocketAnswer, web_socket_answer

log = logging.getLogger(__name__)

_ENVIRONMENT_SETTINGS = tuple(
    name for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") for name in (base, base.upper())
) + ("NETRC",)

# requests' defaults (what every call sent before the conversation bypassed it), plus the stream type.
CONVERSATION_HEADERS = {"Accept": "text/event-stream", "Accept-Encoding": "gzip, deflate",
                        "Content-Type": "application/json", "Connection": "keep-alive"}

USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


class UpstreamClient:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.upstream_root
        self.timeout = (settings.upstream_connect_timeout, settings.upstream_read_timeout)
        self.session = _session(settings)
        self._pool, self._pool_error = _conversation_pool(settings, self.session)
        self._conversation_path = urlsplit(f"{self.root}/backend-api/conversation").path  # what our exchange sends
        self._conduit_path = urlsplit(f"{self.root}/backend-api/f/conversation").path
        self.flow = FlowChoice(settings.conversation_flow)  # per worker: this client is the worker's only one
        self.ca_bundle = _ca_bundle(self.session)  # the upstream's CA: for the links it hands out too
        self.proxy_url = proxy_url(settings.upstream_root, settings.proxy, self.session)  # None: straight
        self._preparer = ConduitPreparer(self.session, f"{self.root}/backend-api/f/conversation/prepare",
                                         settings.upstream_connect_timeout, settings.conduit_prepare_timeout)

    @property
    def proxy(self) -> Optional[ProxyRoute]:
        """The outbound proxy the conversation call goes through (None: straight, or one it cannot
        speak, when every conversation call fails anyway), for the WebSocket dial (ws_dial.py)."""
        return self._pool.proxy if self._pool is not None else None

    def headers(self, access_token: str, account_id: Optional[str] = None) -> Dict[str, str]:
        headers = {"Authorization": f"Bearer {access_token}", "User-Agent": USER_AGENT}
        if account_id:
            headers["Chatgpt-Account-Id"] = account_id
        return headers

    def open_conversation(self, payload: Mapping[str, Any], access_token: str, account_id: Optional[str],
                          deadline: Deadline) -> Steps[Union[UpstreamBody, WebSocketAnswer]]:
        """POST the conversation, in steps (``steps.py``); returns the open streaming reply (or the
        JSON naming the WebSocket it was moved to), or raises UpstreamError. The plain POST, or the
        conduit flow (``conduit.py``) when selected or asked for by a refusal that created no message."""
        headers = self.headers(access_token, account_id)
        headers.update(CONVERSATION_HEADERS)
        if self.flow.use_conduit():
            return (yield from self._open_conduit(payload, headers, deadline))
        with wrap_transport_errors("conversation"):
            body = yield from self._send_conversation(self._conversation_path, jsonbytes.dumps(payload), headers,
                                                      deadline)
        if body.status != 200:
            text = body.read_text()
            if not self.flow.may_switch(body.status, text):
                raise self._failure(body, text)
            log.info("upstream refused the plain conversation POST (HTTP %s): using the conduit flow", body.status)
            answer = yield from self._open_conduit(payload, headers, deadline)
            self.flow.switched()  # only once it worked: a mistyped upstream_base_url is 404 too
            return answer
        return self._answer(body)

    def _open_conduit(self, payload: Mapping[str, Any], headers: Dict[str, str],
                      deadline: Deadline) -> Steps[Union[UpstreamBody, WebSocketAnswer]]:
        """Prepare (three small blocking calls, bounded by conduit_prepare_timeout), then the post."""
        headers = {**headers, "X-Oai-Turn-Trace-Id": str(uuid.uuid4())}  # shared by the prepares and the post
        prepare_headers = {name: value for name, value in headers.items() if name not in CONVERSATION_HEADERS}
        token = self._preparer.prepare(payload, prepare_headers)
        if deadline.remaining() <= 0:
            yield  # let the caller look at its client and keep-alives before the post
        headers["X-Conduit-Token"] = token
        with wrap_transport_errors("conversation"):
            body = yield from self._send_conversation(self._conduit_path, jsonbytes.dumps(conduit_body(payload)),
                                                      headers, deadline)
        if body.status != 200:
            raise self._failure(body, body.read_text())
        return self._answer(body)

    def _answer(self, body: UpstreamBody) -> Union[UpstreamBody, WebSocketAnswer]:
        if _is_document(body.headers.get("Content-Type", "")):
            text = body.read_text()
            answer = web_socket_answer(text)  # the 2024 hand-off: ReplyStream reads the socket it names
            if answer is not None:
                return answer
            raise self._not_a_stream(body, text)
        return body

    def _send_conversation(self, path: str, data: bytes, headers: Dict[str, str],
                           deadline: Deadline) -> Steps[UpstreamBody]:
        if self._pool is None:  # the proxy is one we cannot speak through (logged at start)
            raise self._pool_error.with_traceback(None)  # not one more traceback on it per chat
        exchange = yield from self._pool.exchange("POST", path, headers, data,
                                                  self.timeout[1], deadline)
        return UpstreamBody.from_exchange(exchange, self._pool)

    def hide_conversation(self, conversation_id: str, access_token: str, account_id: Optional[str] = None) -> bool:
        with wrap_transport_errors("hide conversation"):
            response = self.session.patch(
                f"{self.root}/backend-api/conversation/{conversation_id}", json={"is_visible": False},
                headers=self.headers(access_token, account_id), timeout=self.timeout,
            )
        response.close()
        return response.status_code == 200

    def get(self, path: str, what: str, access_token: str, account_id: Optional[str] = None,
            read_timeout: float = 60, connect_timeout: Optional[float] = None) -> requests.Response:
        """A small backend-api GET (e.g. GPT info); the caller reads status and body. A caller with
        a budget of its own (the image result polls) passes what is left of it for both timeouts,
        so that one hung GET cannot outlast the wait it is part of."""
        connect = self.timeout[0] if connect_timeout is None else min(self.timeout[0], connect_timeout)
        with wrap_transport_errors(what):
            return self.session.get(f"{self.root}{path}", headers=self.headers(access_token, account_id),
                                    timeout=(connect, read_timeout))

    def post(self, url: str, what: str, **kwargs: Any) -> requests.Response:
        """A plain POST to any URL (token refreshers), with our timeouts and error wrapping."""
        kwargs.setdefault("timeout", (self.timeout[0], 60))
        with wrap_transport_errors(what):
            return self.session.post(url, **kwargs)

    def _failure(self, body: UpstreamBody, text: str) -> UpstreamError:
        error = map_upstream_status(body.status, text, body.headers)
        log.info("upstream answered %s: %s", body.status, error.message)
        return error

    def _not_a_stream(self, body: UpstreamBody, text: str) -> UpstreamError:
        # e.g. a JSON error with status 200, or a login page
        content_type = body.headers.get("Content-Type", "")
        message = upstream_message(text, content_type)
        return UpstreamError(502, f"The upstream answered with {content_type or 'no content type'} instead of "
                                  f"an event stream: {message}", 200, code="upstream_not_a_stream")


def _is_document(content_type: str) -> bool:
    """A JSON or HTML answer with status 200 is not a reply stream (a JSON error, a websocket
    hand-off, a login page). Anything else, a missing Content-Type included, is read as SSE: some
    mirrors label their streams loosely."""
    kind = content_type.split(";")[0].strip().lower()
    return kind in ("application/json", "text/html") or kind.endswith("+json")


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


def _conversation_pool(settings: Settings, session: requests.Session) -> Tuple[Optional[ConnectionPool],
                                                                                Optional[UpstreamError]]:
    """The conversation call's own connections (through the proxy that applies to the upstream, if
    any: decided once, the upstream address does not change), or the error every call answers when
    the proxy is one our exchange does not speak."""
    try:
        route = proxy_route(settings.upstream_root, settings.proxy, session)
    except UpstreamError as exc:
        log.error("%s", exc.message)
        return None, exc
    # Enough idle connections that a burst of chats can all reuse theirs afterwards.
    return ConnectionPool(settings.upstream_root, settings.upstream_connect_timeout, _ca_bundle(session),
                          max_idle=max(settings.worker_connections, 10), proxy=route), None


def _ca_bundle(session: requests.Session) -> str:
    """The CA file (or folder) the session verifies the upstream with (``_session``)."""
    return session.verify if isinstance(session.verify, str) else certifi.where()
