"""The daily refresh of known refresh tokens (as the original did at 03:00), on APScheduler.

Every worker schedules the job, but a once-per-day claim in the shared store lets exactly one of
them (across all instances) do the work.
"""
from __future__ import annotations

import logging
import time

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


def start_scheduler(services: Services) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(
        run_daily_refresh, "cron", args=[services], hour=services.settings.refresh.daily_refresh_hour,
        minute=0, id="daily-refresh", coalesce=True, misfire_grace_time=3600,
    )
    scheduler.start()
    return scheduler
