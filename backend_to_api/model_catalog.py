"""The models an account can use: ``GET /backend-api/models`` with the caller's token, shared.

Fetched once per account (one fetcher across workers and instances, under a store lock) and kept
in the store for DISCOVERED_TTL under the account's fingerprint, never the token. It serves two
things: ``/v1/models`` lists what the account has, and a chat naming a slug the account lists but
the table (models.py) lacks is sent upstream as that slug instead of answering 404. Discovery is
an extra, never a condition: a fetch that fails (timeout, 5xx, 401, a body we cannot read) is
logged once, remembered for FAILED_TTL so it is not retried on every request, and the table
answers alone.
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any, Iterable, List, Optional

from .auth.tokens import Credentials, TokenResolver
from .errors import ApiError, model_not_found
from .models import AUTO_SLUG, ModelRegistry, ModelSpec, canonical, passthrough_family
from .store import LockTimeout
from .translate.uploads import account_fingerprint
from .upstream.client import UpstreamClient

log = logging.getLogger(__name__)

DISCOVERED_TTL = 600.0   # plans change rarely; a new model shows within 10 minutes
FAILED_TTL = 60.0        # a failed fetch is not tried again for every request meanwhile
FETCH_TIMEOUT = 3.0      # per read: a chat waits at most this long for a model list it may not need
MODELS_PATH = "/backend-api/models"
# Slugs are echoed to clients and sent upstream: nothing but what slugs are made of.
SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")


class ModelCatalog:
    def __init__(self, table: ModelRegistry, store: Any, tokens: TokenResolver, upstream: UpstreamClient,
                 timeout: float = FETCH_TIMEOUT) -> None:
        self.table = table
        self.store = store
        self.tokens = tokens
        self.upstream = upstream
        self.timeout = timeout

    def resolve(self, name: str, credentials: Credentials, access_token: str) -> ModelSpec:
        """The table's model, else a slug the account lists (sent as it is), else 404."""
        family = self.table.find(name)
        if family is not None:
            return ModelSpec(name, family)
        slug = _listed(name, self.account_slugs(credentials, access_token))
        if slug is None:
            raise model_not_found(name)
        log.info("model %s is not in the table; the account lists it: sent as slug %s", name, slug)
        return ModelSpec(name, passthrough_family(slug))

    def names(self, credentials: Optional[Credentials]) -> List[str]:
        """Public names for /v1/models: the table's that the account can use (all of them when its
        list is unknown), the operator's own entries always, then the account's other slugs."""
        slugs = self._slugs_for(credentials) if credentials is not None else None
        if slugs is None:
            return self.table.names()
        available = set(slugs)
        names = [name for name, family in self.table.items()
                 if family.slug in available or family.slug == AUTO_SLUG or self.table.is_explicit(name)]
        return names + [slug for slug in slugs if not self.table.covers(slug)]

    def _slugs_for(self, credentials: Credentials) -> Optional[List[str]]:
        try:
            access_token = self.tokens.access_token(credentials)
        except ApiError as exc:
            log.info("model list: no access token (%s); listing the table", exc.message)
            return None
        return self.account_slugs(credentials, access_token)

    def account_slugs(self, credentials: Credentials, access_token: str) -> Optional[List[str]]:
        """The account's slugs, from the store or fetched once; None when they cannot be known."""
        account = account_fingerprint(access_token, credentials.account_id, credentials.key)
        cached = self.store.get_json(_key(account))
        if cached is None:
            try:
                # One fetcher per account; the others wait for its answer (bounded like the fetch).
                with self.store.lock(_key(account), ttl=self.timeout * 3, wait=self.timeout * 2):
                    cached = self.store.get_json(_key(account)) or self._fetch_and_store(account, credentials,
                                                                                         access_token)
            except LockTimeout:
                log.warning("model list of account %s: another fetch is taking too long; using the table", account)
                return None
        return _slugs_of(cached)

    def _fetch_and_store(self, account: str, credentials: Credentials, access_token: str) -> dict:
        try:
            slugs = self._fetch(credentials, access_token)
        except ApiError as exc:
            log.warning("model list of account %s failed (%s); using the model table for %.0f s",
                        account, exc.message, FAILED_TTL)
            self.store.set_json(_key(account), {"failed": True}, ttl=FAILED_TTL)
            return {"failed": True}
        self.store.set_json(_key(account), {"slugs": slugs}, ttl=DISCOVERED_TTL)
        log.info("model list of account %s: %d models", account, len(slugs))
        return {"slugs": slugs}

    def _fetch(self, credentials: Credentials, access_token: str) -> List[str]:
        # A short read timeout of our own: GET's default 60 s is too long for a list a chat may be
        # waiting for.
        response = self.upstream.get(MODELS_PATH + "?history_and_training_disabled=false", "model list",
                                     access_token, credentials.account_id, read_timeout=self.timeout)
        body = response.content[:1024 * 1024]
        if response.status_code != 200:
            raise ApiError(502, f"HTTP {response.status_code}", code="model_list_failed")
        return _parse(body)


def _key(account: str) -> str:
    return "models:" + account  # the store adds its own namespace


def _slugs_of(cached: Any) -> Optional[List[str]]:
    slugs = cached.get("slugs") if isinstance(cached, dict) else None
    return slugs if isinstance(slugs, list) else None


def _listed(name: str, slugs: Optional[Iterable[str]]) -> Optional[str]:
    wanted = canonical(name)
    return next((slug for slug in slugs or () if canonical(slug) == wanted), None)


def _parse(body: bytes) -> List[str]:
    """``{"models": [...]}``; each item's ``slug``, ``id`` or ``model_slug``, or those of a nested
    ``model`` object (the shapes peers read, spec/backend-api-2026.md 1.1)."""
    try:
        items = json.loads(body).get("models")
    except (ValueError, AttributeError):
        items = None
    if not isinstance(items, list):
        raise ApiError(502, "the answer holds no models list", code="model_list_failed")
    slugs: List[str] = []
    for item in items:
        slug = _slug_of(item)
        if slug is not None and slug not in slugs:
            slugs.append(slug)
    return slugs


def _slug_of(item: Any) -> Optional[str]:
    if isinstance(item, dict) and isinstance(item.get("model"), dict):
        item = {**item["model"], **item}
    if not isinstance(item, dict):
        return None
    for field in ("slug", "id", "model_slug"):
        value = item.get(field)
        if isinstance(value, str) and SLUG.fullmatch(value):
            return value
    return None
