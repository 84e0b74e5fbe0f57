"""GPTs ("gizmos"): which model names are GPTs, and their info, fetched once and shared.

``gpts.json`` maps model names to GPT ids (``{"my-gpt": {"id": "g-..."}}``, the original's file);
``gpt-4-gizmo-<id>`` names any GPT without configuration. A GPT conversation must carry the GPT's
info from ``GET /backend-api/gizmos/<id>``, fetched with ``key_for_gpts_info`` (or, when that is not
set, with the caller's own key) and cached in the shared store, so every worker and instance fetches
it once; a daily job renews the configured ones. A GPT that cannot be fetched is an error, never the
original's silent fallback to gpt-3.5.
"""
from __future__ import annotations

import logging
from typing import Any, List, Mapping, Optional, Sequence

from .auth.tokens import Credentials, TokenResolver
from .errors import ApiError, UpstreamError, model_not_found
from .gpts_file import GIZMO_ID, gpt_names
from .models import ModelFamily, ModelSpec
from .redact import mask
from .settings import Settings
from .store import LockTimeout
from .upstream.client import UpstreamClient
from .upstream.errors import upstream_message
from .upstream.path_segments import segment

log = logging.getLogger(__name__)

GIZMO_PREFIX = "gpt-4-gizmo-"
# Every GPT runs upstream as "gpt-4-gizmo"; today that is a gpt-4o-class model, hence o200k.
GIZMO_FAMILY = ModelFamily("gpt-4-gizmo", "gpt-4-gizmo", "", "o200k_base")
INFO_TTL = 2 * 86400      # renewed daily; a missed renewal leaves a day of slack
MISSING_TTL = 300         # remember a 404 briefly: unknown names must not hammer the upstream
FETCH_LOCK_TTL = 30.0


class GizmoCatalog:
    """Model name -> GPT ModelSpec (with its info); the only GPT interface the rest of the app uses."""

    def __init__(self, names: Mapping[str, str], key: str, store: Any, tokens: TokenResolver,
                 upstream: UpstreamClient) -> None:
        self._ids = dict(names)
        self._key = key.strip()
        self.store = store
        self.tokens = tokens
        self.upstream = upstream

    def names(self) -> List[str]:
        return list(self._ids)

    def is_gpt(self, name: str) -> bool:
        return name in self._ids or (name.startswith(GIZMO_PREFIX) and len(name) > len(GIZMO_PREFIX))

    def resolve(self, name: str, caller: Credentials) -> ModelSpec:
        """The GPT spec for a name ``is_gpt`` accepted; raises 404 (unknown GPT) or 502 (fetch failed)."""
        gizmo_id = self._ids.get(name) or name[len(GIZMO_PREFIX):]
        if not GIZMO_ID.fullmatch(gizmo_id):
            raise model_not_found(name)
        info = self.info(gizmo_id, caller)
        if info is None:
            raise model_not_found(name)
        return ModelSpec(name, GIZMO_FAMILY, gizmo_id=_id_of(info, gizmo_id), gizmo=info)

    def info(self, gizmo_id: str, caller: Optional[Credentials] = None, force: bool = False) -> Optional[dict]:
        """The cached info, fetched on a miss (one fetcher at a time per GPT); None if it does not exist."""
        if not force:
            cached = self.store.get_json(_key(gizmo_id))
            if cached is not None:
                return _unwrap(cached)
        try:
            with self.store.lock("gizmo:" + gizmo_id, ttl=FETCH_LOCK_TTL, wait=FETCH_LOCK_TTL + 5):
                cached = None if force else self.store.get_json(_key(gizmo_id))
                if cached is not None:  # another worker fetched it while we waited
                    return _unwrap(cached)
                return self._fetch_and_store(gizmo_id, caller)
        except LockTimeout:
            raise UpstreamError(503, "Timed out waiting for a GPT info fetch in progress.", code="gizmo_busy") from None

    def refresh_configured(self) -> int:
        """The daily job: fetch every configured GPT again. Returns how many worked."""
        return self._fetch_each(sorted(set(self._ids.values())), force=True)

    def warm(self) -> int:
        """Fetch the configured GPTs that are not cached yet (at worker start, off the request path)."""
        return self._fetch_each(sorted(set(self._ids.values())), force=False)

    def _fetch_each(self, gizmo_ids: Sequence[str], force: bool) -> int:
        fetched = 0
        for gizmo_id in gizmo_ids:
            try:
                if self.info(gizmo_id, force=force) is not None:
                    fetched += 1
                else:
                    log.warning("GPT %s does not exist or key_for_gpts_info cannot see it", gizmo_id)
            except ApiError as exc:
                log.warning("fetching GPT %s failed: %s", gizmo_id, exc.message)
        return fetched

    def _fetch_and_store(self, gizmo_id: str, caller: Optional[Credentials]) -> Optional[dict]:
        info = self._fetch(gizmo_id, self._credentials(caller))
        if info is None:
            self.store.set_json(_key(gizmo_id), {"missing": True}, ttl=MISSING_TTL)
            return None
        self.store.set_json(_key(gizmo_id), {"info": info}, ttl=INFO_TTL)
        log.info("fetched GPT %s", gizmo_id)
        return info

    def _credentials(self, caller: Optional[Credentials]) -> Credentials:
        if self._key:
            key, _, account_id = self._key.partition(",")
            return Credentials(key.strip(), account_id.strip() or None)
        if caller is None:
            raise UpstreamError(502, "key_for_gpts_info is not set: GPT info can only be fetched on first use.",
                                code="gizmo_key_missing")
        return caller

    def _fetch(self, gizmo_id: str, credentials: Credentials) -> Optional[dict]:
        access_token = self._access_token(credentials)
        path = f"/backend-api/gizmos/{segment(gizmo_id)}"  # GIZMO_ID-checked already; this is the last word
        response = self.upstream.get(path, "GPT info", access_token, credentials.account_id)
        body = response.text[:64 * 1024]
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            message = upstream_message(body, response.headers.get("Content-Type", ""))
            raise UpstreamError(502, f"Fetching the GPT's info failed (HTTP {response.status_code}): {message}",
                                response.status_code, code="gizmo_fetch_failed")
        try:
            info = response.json()
        except ValueError:
            info = None
        if not isinstance(info, dict) or not isinstance(info.get("gizmo"), dict):
            raise UpstreamError(502, "The upstream's GPT info has an unexpected shape.", 200, code="gizmo_fetch_failed")
        return info

    def _access_token(self, credentials: Credentials) -> str:
        if credentials.key != self._key.partition(",")[0].strip():
            return self.tokens.access_token(credentials)  # the caller's key: its errors are the caller's
        try:
            return self.tokens.access_token(credentials)
        except ApiError as exc:
            # Our own key failed, not the caller's: never a 401 (one-api would disable the channel).
            log.warning("key_for_gpts_info (%s) failed: %s", mask(credentials.key), exc.message)
            raise UpstreamError(502, f"key_for_gpts_info could not be used: {exc.message}",
                                code="gizmo_key_failed") from exc


def _key(gizmo_id: str) -> str:
    return "gizmo:" + gizmo_id


def _unwrap(cached: Any) -> Optional[dict]:
    info = cached.get("info") if isinstance(cached, dict) else None
    return info if isinstance(info, dict) else None


def _id_of(info: Mapping[str, Any], fallback: str) -> str:
    # The original sent gizmo.id from the info: the canonical id, whatever spelling was configured.
    gizmo_id = info.get("gizmo", {}).get("id")
    return gizmo_id if isinstance(gizmo_id, str) and gizmo_id else fallback


def build_catalog(settings: Settings, store: Any, tokens: TokenResolver, upstream: UpstreamClient,
                  builtin_names: Sequence[str]) -> GizmoCatalog:
    names = gpt_names(settings, builtin_names)
    return GizmoCatalog(names, settings.key_for_gpts_info, store, tokens, upstream)
