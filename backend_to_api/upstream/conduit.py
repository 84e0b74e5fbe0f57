"""The newer conversation flow (spec 2.5-2.7): three prepares, then ``POST /f/conversation``.

A mirror (spec 2.8) takes the plain ``POST /backend-api/conversation`` and does this itself, so
mirror mode stays the default. ``conversation_flow`` selects it (``conduit``), or lets the upstream
ask for it (``auto``): a refusal of the plain POST that provably created no message (``wants_conduit``)
switches this worker's client to the conduit flow for ``REMEMBER_SECONDS``.

Sentinel, proof-of-work and Turnstile (spec 2.1-2.4) are not ours: an upstream that needs them is
one a mirror must stand in front of.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Callable, Dict, Mapping

import requests

from ..errors import UpstreamError
from ..jsonbytes import string_field
from .errors import map_upstream_status, short_error_body, wrap_transport_errors

log = logging.getLogger(__name__)

FLOWS = ("mirror", "conduit", "auto")
PREPARE_STATES = ("none", "sent", "success")  # [A]'s sequence; each answer's token goes on the next call
# A prepare posts no message, so one that failed in transit or with a 5xx is tried once more.
PREPARE_ATTEMPTS = 2
# How long a worker keeps going straight to the conduit flow after the upstream asked for it; then
# the plain POST is tried again (one refused POST per hour costs nothing).
REMEMBER_SECONDS = 3600.0
# Statuses that mean "no such route": the server never read the turn as a message.
_ROUTE_REFUSALS = (404, 405, 410)
# Other refusals switch only when their body names the newer flow.
_NAMED_REFUSALS = (400, 403, 409, 422, 426)
_FLOW_WORDS = ("/f/conversation", "conduit")
_CONTEXT = {"app_name": "chatgpt.com", "is_dark_mode": False, "page_height": 900, "page_width": 1440,
            "pixel_ratio": 1, "screen_height": 1080, "screen_width": 1920, "time_since_loaded": 30}


def wants_conduit(status: int, body: str) -> bool:
    """The plain POST was refused in a way that asks for the newer flow and created no message.

    Only a 4xx counts (the refusal came before the turn was taken): 404/405/410 (the route is gone),
    or 400/403/409/422/426 whose body names ``/f/conversation`` or ``conduit``. Never 401 (the token
    is refreshed instead), 429 or a 5xx (the server may have started on the turn)."""
    if status in _ROUTE_REFUSALS:
        return True
    return status in _NAMED_REFUSALS and any(word in body.lower() for word in _FLOW_WORDS)


class FlowChoice:
    """Which flow this worker's conversation POST takes (one client per worker, one upstream each)."""

    def __init__(self, mode: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.mode = mode
        self._clock = clock
        self._conduit_until = 0.0

    def use_conduit(self) -> bool:
        return self.mode == "conduit" or (self.mode == "auto" and self._clock() < self._conduit_until)

    def may_switch(self, status: int, body: str) -> bool:
        return self.mode == "auto" and wants_conduit(status, body)

    def switched(self) -> None:
        self._conduit_until = self._clock() + REMEMBER_SECONDS


def conduit_body(payload: Mapping[str, Any]) -> Dict[str, Any]:
    """The post's body (spec 2.6, [A]): ours as it is, plus the state [A] says keeps it off the
    "mini" pool."""
    return {**payload, "client_prepare_state": "success"}


def prepare_body(payload: Mapping[str, Any], state: str) -> Dict[str, Any]:
    """One prepare call's body (spec 2.5), from the conversation payload it prepares."""
    body: Dict[str, Any] = {
        "action": "next", "parent_message_id": payload.get("parent_message_id"), "model": payload.get("model"),
        "client_prepare_state": state, "client_prepare_dispatch": "debounced",
        "client_prepare_source": "composer_editor_state",
        "timezone_offset_min": payload.get("timezone_offset_min", 0), "timezone": "UTC",
        "conversation_mode": payload.get("conversation_mode") or {"kind": "primary_assistant"},
        "system_hints": payload.get("system_hints") or [], "supports_buffering": True,
        "supported_encodings": ["v1"], "client_contextual_info": dict(_CONTEXT),
        "local_function_names": ["local.continue_in_work"],
    }
    if payload.get("conversation_id"):
        body["conversation_id"] = payload["conversation_id"]
    if state != "none":
        body["partial_query"] = {"id": str(uuid.uuid4()), "author": {"role": "user"},
                                 "content": {"content_type": "text", "parts": [_typed_so_far(payload)]}}
    return body


def _typed_so_far(payload: Mapping[str, Any]) -> str:
    """What [A] puts in ``partial_query``: the first 5 characters of the last user text, or "h"."""
    for message in reversed(payload.get("messages") or []):
        if message.get("author", {}).get("role") != "user":
            continue
        texts = [part for part in message.get("content", {}).get("parts", []) if isinstance(part, str)]
        return ("".join(texts)[:5]) or "h"
    return "h"


class ConduitPreparer:
    """The three prepare calls, each carrying the previous answer's ``conduit_token``."""

    def __init__(self, session: requests.Session, url: str, connect_timeout: float, budget: float) -> None:
        self.session = session
        self.url = url
        self.connect_timeout = connect_timeout
        self.budget = budget  # all the prepares of one turn, retries included

    def prepare(self, payload: Mapping[str, Any], headers: Mapping[str, str]) -> str:
        """The last conduit token, or UpstreamError (the upstream's own status mapped when it
        refused us, else 502 ``upstream_prepare_failed``; 504 when the budget ran out)."""
        ends = time.monotonic() + self.budget
        token = ""
        for state in PREPARE_STATES:
            token = self._one(prepare_body(payload, state), {**headers, "X-Conduit-Token": token}, ends)
        return token

    def _one(self, body: Dict[str, Any], headers: Dict[str, str], ends: float) -> str:
        attempt = 1
        while True:
            try:
                return self._call(body, headers, ends)
            except UpstreamError as exc:
                in_transit = exc.upstream_status is None or exc.upstream_status >= 500
                if attempt >= PREPARE_ATTEMPTS or not in_transit or ends - time.monotonic() <= 0:
                    raise
                log.info("conduit prepare (%s) failed, trying once more: %s", body["client_prepare_state"],
                         exc.message)
                attempt += 1

    def _call(self, body: Dict[str, Any], headers: Dict[str, str], ends: float) -> str:
        remaining = ends - time.monotonic()
        if remaining <= 0:
            raise UpstreamError(504, "The upstream's conversation prepare did not answer in time.",
                                code="upstream_prepare_failed")
        with wrap_transport_errors("conversation prepare"):
            response = self.session.post(self.url, json=body, headers={**headers, "Accept": "*/*"},
                                         timeout=(min(self.connect_timeout, remaining), remaining), stream=True)
        if response.status_code != 200:
            raise _refused(response)
        with wrap_transport_errors("conversation prepare"):
            text = short_error_body(response)
        token = string_field(text, "conduit_token")
        if not token:
            raise UpstreamError(502, "The upstream's conversation prepare answered without a conduit_token.",
                                200, code="upstream_prepare_failed")
        return token


def _refused(response: requests.Response) -> UpstreamError:
    status = response.status_code
    error = map_upstream_status(status, short_error_body(response), response.headers)
    if status in (401, 403, 429):  # the token, the account or the rate: the client can act on these
        return error
    return UpstreamError(502, f"The upstream's conversation prepare failed with HTTP {status}: {error.message}",
                         status, code="upstream_prepare_failed")
