"""Bearer key -> upstream access token.

A key that is a JWT is an access token, used as is. Anything else is a refresh token, exchanged
through xyhelper (form POST) or OpenAI's OAuth endpoint (``enableOai``). The access token is cached
in the shared store with a TTL from its ``exp`` (minus a margin), so every worker and instance uses
the same one; a lock per refresh token makes sure only one exchange of it runs at a time.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import requests

from ..errors import ApiError, UpstreamError, unauthorized
from ..redact import fingerprint, mask
from ..settings import RefreshSettings
from ..store import LockTimeout
from ..upstream.client import UpstreamClient
from .jwt import jwt_expiry, looks_like_access_token

log = logging.getLogger(__name__)

DEFAULT_TTL = 3600.0          # when an access token carries no exp
KNOWN_TOKEN_TTL = 14 * 86400  # refresh tokens live ~10 days; forget ones unused for longer
REFRESH_LOCK_TTL = 30.0
LOCAL_TTL = 30.0
LOCAL_MAX = 10000


@dataclass(frozen=True)
class Credentials:
    """What the client presented: ``key`` (refresh or access token) and an optional Team account."""

    key: str
    account_id: Optional[str] = None

    @property
    def is_access_token(self) -> bool:
        return looks_like_access_token(self.key)


def parse_bearer(header: Optional[str], account_header: Optional[str] = None) -> Credentials:
    if not header or not header[:7].lower() == "bearer ":
        raise unauthorized("Missing API key: send 'Authorization: Bearer <refresh_token or access_token>'.")
    key, _, account_id = header[7:].strip().partition(",")
    key = key.strip()
    if not key:
        raise unauthorized("The API key is empty.", code="invalid_api_key")
    return Credentials(key, (account_id.strip() or account_header or "").strip() or None)


class TokenResolver:
    def __init__(self, settings: RefreshSettings, store, client: UpstreamClient, metrics=None) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.metrics = metrics
        # A short-lived copy of the shared cache in this worker: a Redis round trip per request was
        # the largest single cost of starting a stream (bench/README.md). 30 s keeps it fresh enough:
        # a copy made stale by another instance's refresh costs at most one upstream 401 and retry.
        self._local: Dict[str, Tuple[str, float]] = {}

    def access_token(self, credentials: Credentials, stale: Optional[str] = None) -> str:
        """The access token to use now. ``stale``: one the upstream just rejected (forces a refresh)."""
        if credentials.is_access_token:
            if stale:
                raise unauthorized("The access token was rejected by the upstream.", code="invalid_api_key")
            return credentials.key
        return self.refresh(credentials.key, stale=stale)

    def refresh(self, refresh_token: str, stale: Optional[str] = None) -> str:
        key = "at:" + fingerprint(refresh_token)
        cached = self._cached(key, stale)
        if cached:
            if self.metrics is not None:
                self.metrics.token_cache_hits.inc()
            return cached
        try:
            with self.store.lock("refresh:" + fingerprint(refresh_token), ttl=REFRESH_LOCK_TTL, wait=REFRESH_LOCK_TTL + 5):
                # Whoever held the lock before us may have refreshed it already.
                cached = self._cached(key, stale)
                if cached:
                    return cached
                return self._exchange_and_store(refresh_token, key)
        except LockTimeout:
            raise UpstreamError(503, "Timed out waiting for a token refresh in progress.", code="refresh_busy") from None

    def _cached(self, key: str, stale: Optional[str]) -> Optional[str]:
        token, until = self._local.get(key, ("", 0.0))
        if token and token != stale and until > time.monotonic():
            return token
        entry = self.store.get_json(key)
        token = entry.get("access_token") if isinstance(entry, dict) else None
        if not token or token == stale:
            return None
        self._keep_locally(key, token, entry.get("exp"))
        return token

    def _keep_locally(self, key: str, token: str, expiry: Optional[float]) -> None:
        seconds = LOCAL_TTL
        if isinstance(expiry, (int, float)):
            seconds = min(seconds, expiry - time.time() - self.settings.expiry_margin)
        if seconds <= 0:
            return
        if len(self._local) > LOCAL_MAX:
            now = time.monotonic()
            self._local = {k: v for k, v in self._local.items() if v[1] > now}
        self._local[key] = (token, time.monotonic() + seconds)

    def _exchange_and_store(self, refresh_token: str, key: str) -> str:
        started = time.monotonic()
        token = self._exchange(refresh_token)
        expiry = jwt_expiry(token)
        ttl = (expiry - time.time() - self.settings.expiry_margin) if expiry else DEFAULT_TTL
        if ttl > 0:
            self.store.set_json(key, {"access_token": token, "exp": expiry}, ttl=ttl)
            self._keep_locally(key, token, expiry)
        self.remember(refresh_token)
        log.info("refreshed access token for %s in %.0f ms", mask(refresh_token), (time.monotonic() - started) * 1000)
        return token

    def remember(self, refresh_token: str) -> None:
        """Record a refresh token for the daily refresh job: in clear, as the job needs it whole
        (unless ``remember_refresh_tokens`` is false: then nothing is kept, and the job renews none)."""
        name = fingerprint(refresh_token)
        if not self.settings.remember_refresh_tokens:
            self.store.delete("rt:" + name)  # one kept before the setting changed goes now
            return
        self.store.set_json("rt:" + name, {"refresh_token": refresh_token, "seen": time.time()}, ttl=KNOWN_TOKEN_TTL)
        self.store.add_to_set("rt:index", name)

    def refresh_known(self) -> int:
        """The daily job: renew every refresh token seen recently. Returns how many succeeded."""
        if not self.settings.remember_refresh_tokens:
            return 0  # none is kept for it
        succeeded = 0
        for name in self.store.members("rt:index"):
            entry = self.store.get_json("rt:" + name)
            if not isinstance(entry, dict) or not entry.get("refresh_token"):
                continue  # unused for KNOWN_TOKEN_TTL: forgotten
            refresh_token = entry["refresh_token"]
            try:
                # The cached token counts as stale: the point is a fresh one.
                self.refresh(refresh_token, stale=self._cached("at:" + name, None))
                succeeded += 1
            except ApiError as exc:
                log.warning("daily refresh of %s failed: %s", mask(refresh_token), exc.message)
        return succeeded

    def _exchange(self, refresh_token: str) -> str:
        try:
            token = self._call_refresher(refresh_token)
        except ApiError as exc:
            self._count_refresh("rejected" if exc.status == 401 else "failed")
            raise
        self._count_refresh("ok")
        return token

    def _count_refresh(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.token_refreshes.labels(outcome).inc()

    def _call_refresher(self, refresh_token: str) -> str:
        if self.settings.enable_oai:
            response = self.client.post(self.settings.oai_url, "token refresh", json={
                "redirect_uri": self.settings.oai_redirect_uri,
                "grant_type": "refresh_token",
                "client_id": self.settings.oai_client_id,
                "refresh_token": refresh_token,
            })
        else:
            response = self.client.post(self.settings.xyhelper_url, "token refresh", data={"refresh_token": refresh_token})
        return _access_token_from(response, refresh_token)


def _access_token_from(response: requests.Response, refresh_token: str) -> str:
    status = response.status_code
    try:
        data = response.json()
    except ValueError:
        data = None
    token = data.get("access_token") if isinstance(data, dict) else None
    if status == 200 and isinstance(token, str) and looks_like_access_token(token):
        return token
    log.warning("token refresh for %s failed: HTTP %s", mask(refresh_token), status)
    if status >= 500 or status == 429:
        # The refresher is down, not the key: a 401 here would make one-api disable the channel.
        raise UpstreamError(502, f"The token refresh service failed (HTTP {status}); try again later.",
                            status, code="refresh_unavailable")
    raise unauthorized("The refresh_token was rejected by the token refresh service.", code="invalid_api_key")
