"""Upstream calls made with one account's token, under chat's rules (shared by chat and voice): an
upstream 429 starts the rate limiter's cool-down for that account and slug, and a 401 is answered by
refreshing the token once and retrying the call once.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Optional, Protocol, TypeVar, Union

from .auth.tokens import Credentials, TokenResolver
from .errors import UpstreamError
from .limits import RateLimiter, limit_key
from .redact import mask
from .upstream.body import UpstreamBody
from .upstream.client import UpstreamClient
from .upstream.steps import Deadline, Steps
from .upstream.ws_answer import WebSocketAnswer

log = logging.getLogger(__name__)

Result = TypeVar("Result")


class AccountTurn(Protocol):
    """Whose call it is: the credentials, and the access token the upstream currently accepts
    (replaced by a refresh). chat_service.OpenReply and voice_service.Session are ones."""

    credentials: Credentials
    access_token: Optional[str]


class AccountCalls:
    def __init__(self, upstream: UpstreamClient, tokens: TokenResolver, limiter: Optional[RateLimiter]) -> None:
        self.upstream = upstream
        self.tokens = tokens
        self.limiter = limiter  # None: no limits of our own, so no cool-down either

    def open_conversation(self, payload: Mapping[str, Any], turn: AccountTurn, limit_slug: str,
                          deadline: Deadline) -> Steps[Union[UpstreamBody, WebSocketAnswer]]:
        """The conversation call, in steps (as ReplyStream drives it); on a 401 the token is
        refreshed once (blocking: as the first token lookup is) and the call retried."""
        account_id = turn.credentials.account_id
        try:
            return (yield from self.upstream.open_conversation(payload, turn.access_token, account_id, deadline))
        except UpstreamError as exc:
            self._cool_down(exc, turn.credentials, limit_slug)
            if exc.upstream_status != 401:
                raise
        self.refresh(turn)
        return (yield from self.upstream.open_conversation(payload, turn.access_token, account_id, deadline))

    def retrying(self, turn: AccountTurn, limit_slug: str, call: Callable[[str], Result]) -> Result:
        """``call(access_token)`` for a call that is not a conversation (voice), with the same rules."""
        try:
            return call(turn.access_token)
        except UpstreamError as exc:
            self._cool_down(exc, turn.credentials, limit_slug)
            if exc.upstream_status != 401:
                raise
        self.refresh(turn)
        return call(turn.access_token)

    def refresh(self, turn: AccountTurn) -> None:
        log.info("upstream rejected the access token of %s; refreshing once", mask(turn.credentials.key))
        turn.access_token = self.tokens.access_token(turn.credentials, stale=turn.access_token)

    def _cool_down(self, exc: UpstreamError, credentials: Credentials, limit_slug: str) -> None:
        if exc.status == 429 and self.limiter is not None:
            retry_after = exc.headers.get("Retry-After", "")
            self.limiter.cool_down(limit_key(credentials), limit_slug,
                                   float(retry_after) if retry_after.isdigit() else None)
