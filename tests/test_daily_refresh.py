"""The daily refresh job, run in-process against the emulated refresher and a real Redis: called
directly for a fixed day, and through the worker's real scheduler, triggered at once (never by
waiting for the hour); and the switch that keeps it out of the test proxies."""
from __future__ import annotations

import uuid
from datetime import datetime

from backend_to_api.services import build_services
from backend_to_api.scheduler import run_daily_refresh, start_scheduler
from backend_to_api.settings import load_settings
from backend_to_api.store import RedisStore, redis_client

from .conftest import wait_until

DAY = "2026-01-01"  # the claim's day: fixed, so a run across midnight claims the same one


def daily_settings(emulator, redis_server, **refresh):
    return load_settings({}, overrides={
        "upstream_base_url": emulator.url,
        "refresh_ToAccess": {"xyhelper_refreshToAccess_Url": emulator.url + "/applelogin", **refresh},
        "redis": {"host": "127.0.0.1", "port": redis_server.port, "db": 3},
    })


def services_with_known_tokens(settings, count: int):
    store = RedisStore(redis_client(settings.redis))
    store.client.flushdb()  # no claim nor known token from an earlier test
    services = build_services(settings, store)
    tokens = ["rt-daily-" + uuid.uuid4().hex for _ in range(count)]
    for token in tokens:
        services.tokens.refresh(token)
    return services, tokens


def refreshed_since(emulator, before: int):
    return sorted(c["form"]["refresh_token"] for c in emulator.requests("/applelogin")[before:])


def test_known_refresh_tokens_are_refreshed_once_a_day(emulator, redis_server):
    settings = daily_settings(emulator, redis_server)
    services, tokens = services_with_known_tokens(settings, 3)
    before = len(emulator.requests("/applelogin"))
    assert run_daily_refresh(services, DAY) == 3
    assert refreshed_since(emulator, before) == sorted(tokens)
    # a second worker (or instance) the same day does nothing
    assert run_daily_refresh(build_services(settings, RedisStore(redis_client(settings.redis))), DAY) == 0
    assert len(emulator.requests("/applelogin")) == before + 3


def test_the_scheduled_job_runs_at_the_configured_hour_and_refreshes_when_triggered(emulator, redis_server):
    services, tokens = services_with_known_tokens(daily_settings(emulator, redis_server, daily_refresh_hour=4), 2)
    scheduler = start_scheduler(services)
    try:
        job = scheduler.get_job("daily-refresh")
        assert (job.next_run_time.hour, job.next_run_time.minute) == (4, 0)
        assert scheduler.get_job("daily-gizmos").next_run_time.minute == 5
        before = len(emulator.requests("/applelogin"))
        job.modify(next_run_time=datetime.now(job.next_run_time.tzinfo))  # its hour, now
        wait_until(lambda: len(refreshed_since(emulator, before)) >= 2, timeout=10, what="the daily refresh")
        assert refreshed_since(emulator, before) == sorted(tokens)
    finally:
        scheduler.shutdown()


def test_daily_refresh_false_schedules_no_daily_job(emulator, redis_server):
    settings = daily_settings(emulator, redis_server, daily_refresh=False)
    assert settings.refresh.daily_refresh is False
    services, _ = services_with_known_tokens(settings, 1)
    assert start_scheduler(services) is None  # no GPT configured either: nothing to schedule


def test_the_test_proxies_run_without_the_daily_jobs(proxy):
    # Exact refresh counts (test_tokens_e2e) would break in a run that crosses daily_refresh_hour.
    assert "daily jobs off" in proxy.output()
    assert "daily jobs at" not in proxy.output()
