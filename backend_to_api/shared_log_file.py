"""log/access.log, written by every gunicorn worker and rotated at midnight without losing a day.

The standard TimedRotatingFileHandler assumes one writer. With several workers, each keeps its own
idea of when midnight is and rotates on its own: the second one past midnight deletes the dated file
the first one made (the stock handler clears the way for its own rename) and renames the new
access.log over it, so a whole day is lost. concurrent-log-handler's timed handler is built for
several processes: every write takes a lock file, the next rollover time is kept in that lock file
(so one worker rotates and the others see it done), a writer whose open file was rotated away
reopens it, and a rotated name already taken gets a numbered suffix instead of being overwritten.
"""
from __future__ import annotations

import logging

from concurrent_log_handler import ConcurrentTimedRotatingFileHandler

DAYS_KEPT = 30


def shared_daily_file(path: str, kept: int = DAYS_KEPT, when: str = "midnight", interval: int = 1) -> logging.Handler:
    """A handler that every worker can append ``path`` through; ``when``/``interval`` are the stock
    TimedRotatingFileHandler's (tests pass a rollover every second)."""
    # The lock file is .__access.lock next to access.log (the library's name for it).
    return ConcurrentTimedRotatingFileHandler(path, when=when, interval=interval, backupCount=kept,
                                              encoding="utf-8")
