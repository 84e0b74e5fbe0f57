"""One chat request, from a validated ChatRequest to an open upstream reply.

Resolves the model and the access token, posts the conversation (refreshing the token and retrying
once when the upstream says 401), then reads until the first real event so that an upstream that
fails early is answered with a proper HTTP error rather than a 200 stream (openai-compat.md item 22).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from .account_calls import AccountCalls
from .auth.pool import TokenPool, with_failover
from .auth.tokens import Credentials, TokenResolver
from .conversation_hider import ConversationHider, HideJob, hide_with
from .errors import ApiError, ClientGone, UpstreamError, content_blocked, empty_reply
from .gpts import GizmoCatalog
from .limits import RateLimiter, limit_key
from .model_catalog import ModelCatalog
from .models import ModelRegistry, ModelSpec
from .settings import Settings
from .sse.events import BOOKKEEPING, ActionConfirmation, Event, StreamEnd, UpstreamFailure
from .translate.actions import build_action_payload
from .translate.chat_request import ChatRequest
from .translate.conversation import build_conversation_payload
from .translate.uploads import AccountFiles, InputFiles
from .upstream.body import UpstreamBody
from .upstream.client import UpstreamClient
from .upstream.handoff import HandOff
from .upstream.reply import WAITING, FollowUp, ReplyStream
from .upstream.steps import Deadline, Steps
from .upstream.ws_dial import WebSocketDialer

log = logging.getLogger(__name__)

# While no header has gone out, how often a request waiting for the first event checks that its
# client is still there (a client that left must not keep an upstream reply running).
FIRST_EVENT_TICK = 0.5


def _never() -> bool:
    return False


@dataclass
class OpenReply:
    """An upstream reply that has started; ``pending`` are the events read while waiting for it."""

    model: ModelSpec
    credentials: Credentials
    reply: Optional[ReplyStream] = None
    access_token: Optional[str] = None  # the one the upstream accepted (for hiding the conversation)
    pending: List[Event] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class CustomTurn:
    """A turn whose model and payload the caller decides (image_jobs.py: picture_v2 turns). The
    payload is built with the account's files (None: uploads unavailable), after a refresh again."""

    model: ModelSpec
    payload: Callable[[Optional[AccountFiles]], dict]


class ChatService:
    def __init__(self, settings: Settings, models: ModelRegistry, tokens: TokenResolver, upstream: UpstreamClient,
                 gpts: GizmoCatalog, files: Optional[InputFiles] = None, metrics=None,
                 limiter: Optional[RateLimiter] = None, pool: Optional[TokenPool] = None,
                 catalog: Optional[ModelCatalog] = None, ws_dialer: Optional[WebSocketDialer] = None,
                 hider: Optional[ConversationHider[HideJob]] = None) -> None:
        self.settings = settings
        self.models = models
        self.tokens = tokens
        self.upstream = upstream
        self.gpts = gpts
        self.files = files  # None: image and file inputs are refused with a 400
        self.metrics = metrics
        self.limiter = limiter
        self.pool = pool if pool is not None else TokenPool([], None)
        self.catalog = catalog  # None: the table alone (no discovery)
        self.ws_dialer = ws_dialer  # None: a reply moved to the upstream's WebSocket is not followed
        self._hider = hider if hider is not None else ConversationHider(hide_with(upstream))
        self._account_calls = AccountCalls(upstream, tokens, limiter)  # cool-down on a 429, one refresh on a 401

    def resolve_model(self, name: str, credentials: Credentials, access_token: str) -> ModelSpec:
        """A GPT (whose info may have to be fetched: 404 or 502 if it cannot), else the table's model,
        else a slug the account's model list has (model_catalog.py), else 404."""
        if self.gpts.is_gpt(name):
            return self.gpts.resolve(name, credentials)
        if self.catalog is None:
            return self.models.resolve(name)
        return self.catalog.resolve(name, credentials, access_token)

    def open(self, request: ChatRequest, credentials: Optional[Credentials],
             client_gone: Callable[[], bool] = _never, turn: Optional["CustomTurn"] = None) -> OpenReply:
        """Open the reply with the client's credentials, or (None) with tokens from the pool.
        ``client_gone`` is asked while the first event is awaited (ClientGone when it says yes).
        ``turn``: the model and payload are the caller's (the images API), not ``request``'s."""
        return with_failover(self.pool, credentials,
                             lambda entry: self._open_with(request, entry, client_gone, turn))

    def _open_with(self, request: ChatRequest, credentials: Credentials, client_gone: Callable[[], bool],
                   turn: Optional["CustomTurn"] = None) -> OpenReply:
        # The caller's key is checked first: a GPT lookup spends key_for_gpts_info's token, which
        # a caller with no valid key must not be able to make us do; a name the table lacks needs
        # the account's model list, fetched with that token.
        access_token = self.tokens.access_token(credentials)  # bad keys fail here, before any call
        model = turn.model if turn is not None else self.resolve_model(request.model, credentials, access_token)
        opened = OpenReply(model, credentials)
        opened.access_token = access_token
        if self.limiter is not None:
            self.limiter.acquire(limit_key(credentials), model.slug)
        payload = self._payload(request, opened, turn)
        opened.reply = ReplyStream(lambda deadline: self._post(payload, opened, deadline),
                                   self._action_follow_up(opened), read_timeout=self.settings.upstream_read_timeout,
                                   hand_off=self._hand_off(opened))
        try:
            self._await_first_event(opened, client_gone)
        except ApiError as exc:
            opened.reply.close()
            exc.turn_posted = exc.turn_posted or opened.reply.accepted  # then no other token may post it again
            raise
        except BaseException:
            opened.reply.close()
            raise
        return opened

    def _payload(self, request: ChatRequest, opened: OpenReply, turn: Optional["CustomTurn"]) -> dict:
        """The conversation payload. Uploading its files needs the token: on a 401, refresh once."""
        try:
            return self._build_payload(request, opened, turn)
        except UpstreamError as exc:
            if exc.upstream_status != 401:
                raise
        self._account_calls.refresh(opened)
        return self._build_payload(request, opened, turn)

    def _build_payload(self, request: ChatRequest, opened: OpenReply, turn: Optional["CustomTurn"]) -> dict:
        credentials = opened.credentials
        files = None
        if self.files is not None and opened.access_token:
            files = self.files.for_account(opened.access_token, credentials.account_id, credentials.key)
        if turn is not None:
            return turn.payload(files)
        return build_conversation_payload(
            request, opened.model, hide_history=self.settings.need_delete_conversation_after_response, files=files
        )

    def _action_follow_up(self, opened: OpenReply) -> Optional[FollowUp]:
        """GPT replies only: answer an action's confirmation request with "always allow"."""
        if opened.model.gizmo_id is None:
            return None
        hide = self.settings.need_delete_conversation_after_response

        def follow_up(confirmation: ActionConfirmation, deadline: Deadline) -> Steps[UpstreamBody]:
            log.info("GPT action confirmation in conversation %s: answering always_allow", confirmation.conversation_id)
            return self._post(build_action_payload(confirmation, opened.model, hide), opened, deadline)

        return follow_up

    def _hand_off(self, opened: OpenReply) -> Optional[HandOff]:
        """How this reply follows the upstream to its WebSocket (upstream/handoff.py), with the
        token the conversation call ended up using."""
        if self.ws_dialer is None:
            return None
        return HandOff(self.upstream, self.ws_dialer,
                       lambda: self.upstream.headers(opened.access_token, opened.credentials.account_id),
                       lambda: self._account_calls.refresh(opened), self.settings.handoff_ping_interval)

    def _post(self, payload: dict, opened: OpenReply, deadline: Deadline) -> Steps[UpstreamBody]:
        """The conversation call, in steps, cooling down on a 429 and refreshing once on a 401."""
        return self._account_calls.open_conversation(payload, opened, opened.model.slug, deadline)

    def _await_first_event(self, opened: OpenReply, client_gone: Callable[[], bool]) -> None:
        """Read until the upstream has shown it is answering, or the header deadline passes."""
        started = time.monotonic()
        deadline = started + self.settings.first_event_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return  # answer headers now; keep-alives cover the rest of the silence
            batch = opened.reply.next_events(min(remaining, FIRST_EVENT_TICK))
            if batch is WAITING:
                if client_gone():
                    raise ClientGone()
                continue
            if batch is None:
                raise _no_reply(opened.pending)
            opened.pending.extend(batch)  # type: ignore[arg-type]
            if any(_is_real(event) for event in batch):  # type: ignore[union-attr]
                if self.metrics is not None:
                    self.metrics.upstream_first_event.observe(time.monotonic() - started)
                _raise_if_failed_first(opened.pending)
                return

    def hide_later(self, opened: OpenReply, conversation_id: Optional[str]) -> None:
        """Hide the conversation upstream, off the response path (the client already has its answer)."""
        if not (self.settings.need_delete_conversation_after_response and conversation_id):
            return
        self._hider.submit(HideJob(conversation_id, opened.access_token, opened.credentials.account_id))


def _is_real(event: Event) -> bool:
    return not isinstance(event, BOOKKEEPING)  # the conversation id, the model's name, a hand-off topic


def _raise_if_failed_first(events: List[Event]) -> None:
    """If the first real thing the upstream said is an error, answer it as an HTTP error."""
    for event in events:
        if isinstance(event, UpstreamFailure) and event.code == "content_policy_violation":
            raise content_blocked(event.message)
        if isinstance(event, UpstreamFailure):
            raise UpstreamError(502, f"The upstream failed: {event.message}", code=event.code or "upstream_error")
        if isinstance(event, StreamEnd):
            raise empty_reply()
        if _is_real(event):
            return


def _no_reply(events: List[Event]) -> UpstreamError:
    """The body ended before any real event."""
    if any(isinstance(event, StreamEnd) for event in events):
        return empty_reply()
    return UpstreamError(502, "The upstream closed the stream without answering.", code="incomplete_stream")
