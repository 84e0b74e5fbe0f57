"""The daily refresh job, run in-process against the emulated refresher and a real Redis."""
from __future__ import annotations

import uuid

from backend_to_api.services import build_services
from backend_to_api.scheduler import run_daily_refresh
from backend_to_api.settings import load_settings
from backend_to_api.store import RedisStore, redis_client


def test_known_refresh_tokens_are_refreshed_once_a_day(emulator, redis_server):
    settings = load_settings({}, overrides={
        "upstream_base_url": emulator.url,
        "refresh_ToAccess": {"xyhelper_refreshToAccess_Url": emulator.url + "/applelogin"},
        "redis": {"host": "127.0.0.1", "port": redis_server.port, "db": 3},
    })
    store = RedisStore(redis_client(settings.redis))
    store.client.flushdb()
    services = build_services(settings, store)
    tokens = ["rt-daily-" + uuid.uuid4().hex for _ in range(3)]
    for token in tokens:
        services.tokens.refresh(token)
    before = len(emulator.requests("/applelogin"))
    assert run_daily_refresh(services) == 3
    calls = emulator.requests("/applelogin")[before:]
    assert sorted(c["form"]["refresh_token"] for c in calls) == sorted(tokens)
    # a second worker (or instance) at the same hour does nothing
    assert run_daily_refresh(build_services(settings, RedisStore(redis_client(settings.redis)))) == 0
    assert len(emulator.requests("/applelogin")) == before + 3
