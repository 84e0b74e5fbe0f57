"""The objects one worker shares between requests, built once by create_app and passed explicitly."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .auth.pool import ApiKeys, TokenPool, parse_pool
from .auth.tokens import TokenResolver
from .chat_service import ChatService
from .conversation_hider import ConversationHider, hide_with
from .gpts import GizmoCatalog, build_catalog
from .limits import RateLimiter
from .metrics import Metrics
from .model_catalog import ModelCatalog
from .models import ModelRegistry
from .settings import Settings
from .failover_store import FailoverStore, open_store
from .store import MemoryStore, RedisStore
from .translate.uploads import InputFiles
from .upstream.client import UpstreamClient
from .upstream.guarded_fetch import GuardedFetcher, upstream_url_fetcher
from .upstream.ws_dial import WebSocketDialer
from .upstream.voice import VoiceCalls
from .voice_service import VoiceService


@dataclass
class Services:
    settings: Settings
    store: Union[FailoverStore, RedisStore, MemoryStore]
    models: ModelRegistry
    gpts: GizmoCatalog
    upstream: UpstreamClient
    upstream_urls: GuardedFetcher  # download_url, upload_url: the URLs the upstream hands back
    tokens: TokenResolver
    chat: ChatService
    metrics: Metrics
    api_keys: ApiKeys
    voice: Optional[VoiceService] = None  # /v1/audio (api/audio.py)


def build_services(settings: Settings, store: Optional[Union[FailoverStore, RedisStore, MemoryStore]] = None) -> Services:
    store = store if store is not None else open_store(settings.redis)
    metrics = Metrics()
    models = ModelRegistry(settings)
    upstream = UpstreamClient(settings)
    tokens = TokenResolver(settings.refresh, store, upstream, metrics)
    gpts = build_catalog(settings, store, tokens, upstream, models.configured_names())
    upstream_urls = upstream_url_fetcher(settings, upstream.ca_bundle, upstream.proxy_url)
    files = InputFiles(settings, upstream, upstream_urls, store)
    limiter = RateLimiter(store, settings.rate_limit_per_minute, settings.rate_limit_max_wait)
    pool = TokenPool(parse_pool(settings.token_pool), store)
    catalog = ModelCatalog(models, store, tokens, upstream)  # the table plus each account's model list
    hider = ConversationHider(hide_with(upstream))  # one queue per worker, for chat, images and voice
    chat = ChatService(settings, models, tokens, upstream, gpts, files=files, metrics=metrics, limiter=limiter,
                       pool=pool, catalog=catalog, ws_dialer=_ws_dialer(settings, upstream_urls, upstream), hider=hider)
    voice_calls = VoiceCalls(upstream, upstream_urls, settings.upstream_read_timeout)
    voice = VoiceService(settings, tokens, upstream, voice_calls, limiter, pool, hider)
    return Services(settings, store, models, gpts, upstream, upstream_urls, tokens, chat, metrics,
                    ApiKeys(settings.api_keys), voice)


def _ws_dialer(settings: Settings, upstream_urls: GuardedFetcher, upstream: UpstreamClient) -> WebSocketDialer:
    """The reply hand-off's WebSocket URLs come from the upstream: the same checks as its other URLs,
    through the outbound proxy its conversation call takes."""
    return WebSocketDialer(upstream_urls.allowlist, upstream_urls.ca_bundle, settings.upstream_connect_timeout,
                           upstream.proxy)
