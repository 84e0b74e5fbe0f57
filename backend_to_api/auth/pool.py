"""The service's own API keys and its pool of upstream tokens (optional).

With ``api_keys`` set, a client presents one of those keys (compared in constant time) instead of a
ChatGPT token, and each request is served with a token from ``token_pool``: round-robin through a
shared counter, so all workers and instances spread the load alike, skipping tokens that are dead
(their refresh was refused) or cooling down (an upstream 429), and moving on to the next token when
a call fails before the client has received anything. Without ``api_keys`` the Bearer is the
client's own token, as in the original.
"""
from __future__ import annotations

import hmac
import logging
from typing import Callable, Iterator, List, Optional, Tuple, TypeVar

from ..errors import ApiError, unauthorized
from ..redact import fingerprint, mask
from .tokens import Credentials

log = logging.getLogger(__name__)

DEAD_FOR = 3600.0  # a token whose refresh was refused is left alone this long
# Failures that say something about the token or the upstream, not about the request.
FAIL_OVER_STATUSES = (401, 403, 429, 500, 502, 503, 504)

Result = TypeVar("Result")


def parse_pool(value: str) -> List[Credentials]:
    """``token`` or ``token:account_id`` items, comma-separated."""
    entries = []
    for item in (part.strip() for part in value.split(",")):
        if item:
            key, _, account_id = item.partition(":")
            entries.append(Credentials(key.strip(), account_id.strip() or None))
    return entries


class ApiKeys:
    def __init__(self, keys: str) -> None:
        self._keys: Tuple[bytes, ...] = tuple(k.strip().encode() for k in keys.split(",") if k.strip())

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, presented: str) -> None:
        candidate = presented.encode()
        # Compare with every key, always: the time taken says nothing about which one nearly matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise unauthorized("Incorrect API key provided.", code="invalid_api_key")


class TokenPool:
    def __init__(self, entries: List[Credentials], store) -> None:
        self.entries = entries
        self.store = store

    def __bool__(self) -> bool:
        return bool(self.entries)

    def candidates(self) -> Iterator[Credentials]:
        """Every live token once, starting at the next one in the shared rotation."""
        start = self.store.increment("pool:next") % len(self.entries)
        for offset in range(len(self.entries)):
            entry = self.entries[(start + offset) % len(self.entries)]
            if not self.store.get_json(_dead_key(entry)):
                yield entry

    def first_live(self) -> Optional[Credentials]:
        """The first token not known to be dead, without turning the rotation (None: all are dead)."""
        return next((entry for entry in self.entries if not self.store.get_json(_dead_key(entry))), None)

    def failed(self, entry: Credentials, error: ApiError) -> None:
        if error.status == 401:
            self.store.set_json(_dead_key(entry), True, ttl=DEAD_FOR)
            log.warning("pool token %s rejected; skipping it for %.0f s", mask(entry.key), DEAD_FOR)
        else:
            log.info("pool token %s failed (%s); trying the next", mask(entry.key), error.status)


def fails_over(error: ApiError) -> bool:
    """Another token may do better, and trying it posts nothing twice."""
    return error.status in FAIL_OVER_STATUSES and not error.turn_posted


def with_failover(pool: TokenPool, credentials: Optional[Credentials],
                  action: Callable[[Credentials], Result]) -> Result:
    """``action`` with the client's credentials, or (None) with the pool's tokens in turn, moving on
    when one fails in a way another token may not (``action`` must fail before the client got anything)."""
    if credentials is not None:
        return action(credentials)
    last: Optional[ApiError] = None
    for entry in pool.candidates():
        try:
            return action(entry)
        except ApiError as exc:
            if not fails_over(exc):
                raise
            pool.failed(entry, exc)
            last = exc
    raise no_token_left(last)


def no_token_left(last: Optional[ApiError]) -> ApiError:
    # A pool token's 401/403 says nothing about the client's key: answering it would make one-api
    # disable a channel whose key is fine.
    if last is not None and last.status not in (401, 403):
        return last
    return ApiError(503, "No upstream token in the pool is usable right now.", "upstream_error",
                    code="pool_exhausted", headers={"Retry-After": "60"})


def _dead_key(entry: Credentials) -> str:
    return f"pool-dead:{fingerprint(entry.key)}"
