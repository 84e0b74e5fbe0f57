"""The daily jobs (as the original did at 03:00), on APScheduler: renew known refresh tokens and
the configured GPTs' info; plus a one-off fetch of missing GPT info when a worker starts.

Every worker schedules the jobs, but a once-per-day claim in the shared store lets exactly one of
them (across all instances) do the work. The start-up fetch runs on the scheduler's thread so that
a slow upstream never delays worker boot; per-GPT locks in the store make it one fetch in total.
``refresh_ToAccess.daily_refresh: false`` schedules no daily job (the test harness runs so, or a
run that crosses the hour would refresh every token the tests have used).
"""
from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Optional

from apscheduler.schedulers.background import BackgroundScheduler

from .services import Services

log = logging.getLogger(__name__)


def run_daily_refresh(services: Services, day: str = "") -> int:
    """The token job; ``day`` (default today) names the once-a-day claim."""
    day = day or time.strftime("%Y-%m-%d")
    if not services.store.claim(f"daily-refresh:{day}", ttl=20 * 3600):
        return 0
    count = services.tokens.refresh_known()
    log.info("daily refresh: %d refresh tokens refreshed", count)
    return count


def run_daily_gizmo_refresh(services: Services, day: str = "") -> int:
    day = day or time.strftime("%Y-%m-%d")
    if not services.gpts.names() or not services.store.claim(f"daily-gizmos:{day}", ttl=20 * 3600):
        return 0
    count = services.gpts.refresh_configured()
    log.info("daily refresh: %d GPTs renewed", count)
    return count


def start_scheduler(services: Services) -> Optional[BackgroundScheduler]:
    """The worker's scheduler, started; None when it has nothing to do."""
    scheduler = BackgroundScheduler(daemon=True)
    refresh = services.settings.refresh
    if refresh.daily_refresh:
        scheduler.add_job(run_daily_refresh, "cron", args=[services], hour=refresh.daily_refresh_hour, minute=0,
                          id="daily-refresh", coalesce=True, misfire_grace_time=3600)
        # Five minutes after the token job: key_for_gpts_info has just been renewed by then.
        scheduler.add_job(run_daily_gizmo_refresh, "cron", args=[services], hour=refresh.daily_refresh_hour,
                          minute=5, id="daily-gizmos", coalesce=True, misfire_grace_time=3600)
        log.info("daily jobs at %02d:00", refresh.daily_refresh_hour)
    else:
        log.info("daily jobs off (refresh_ToAccess.daily_refresh is false)")
    if services.gpts.names():
        scheduler.add_job(services.gpts.warm, "date", run_date=datetime.now(), id="warm-gizmos",
                          misfire_grace_time=3600)
    if not scheduler.get_jobs():
        return None
    scheduler.start()
    return scheduler
