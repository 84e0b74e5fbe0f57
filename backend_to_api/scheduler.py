"""The daily jobs (as the original did at 03:00), on APScheduler: renew known refresh tokens and
the configured GPTs' info; plus a one-off fetch of missing GPT info when a worker starts.

Every worker schedules the jobs, but a once-per-day claim in the shared store lets exactly one of
them (across all instances) do the work. The start-up fetch runs on the scheduler's thread so that
a slow upstream never delays worker boot; per-GPT locks in the store make it one fetch in total.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler

from .services import Services

log = logging.getLogger(__name__)


def run_daily_refresh(services: Services) -> int:
    day = time.strftime("%Y-%m-%d")
    if not services.store.claim(f"daily-refresh:{day}", ttl=20 * 3600):
        return 0
    count = services.tokens.refresh_known()
    log.info("daily refresh: %d refresh tokens refreshed", count)
    return count


def run_daily_gizmo_refresh(services: Services) -> int:
    day = time.strftime("%Y-%m-%d")
    if not services.gpts.names() or not services.store.claim(f"daily-gizmos:{day}", ttl=20 * 3600):
        return 0
    count = services.gpts.refresh_configured()
    log.info("daily refresh: %d GPTs renewed", count)
    return count


def start_scheduler(services: Services) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(
        run_daily_refresh, "cron", args=[services], hour=services.settings.refresh.daily_refresh_hour,
        minute=0, id="daily-refresh", coalesce=True, misfire_grace_time=3600,
    )
    # Five minutes after the token job: key_for_gpts_info has just been renewed by then.
    scheduler.add_job(
        run_daily_gizmo_refresh, "cron", args=[services], hour=services.settings.refresh.daily_refresh_hour,
        minute=5, id="daily-gizmos", coalesce=True, misfire_grace_time=3600,
    )
    if services.gpts.names():
        scheduler.add_job(services.gpts.warm, "date", run_date=datetime.now(), id="warm-gizmos",
                          misfire_grace_time=3600)
    scheduler.start()
    return scheduler
