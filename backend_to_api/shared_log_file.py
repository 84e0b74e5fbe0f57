"""log/access.log, written by every gunicorn worker and rotated at midnight without losing a day.

The standard TimedRotatingFileHandler assumes one writer. With several workers, the first one past
midnight renames access.log to access.log.<date>; the next one then finds that dated file, deletes
it (the stock handler clears the way for its own rename) and renames the new access.log over it:
the whole previous day is lost. Here the rollover runs under a lock file, and a worker that finds
the file already rotated (access.log is no longer the file it has open) only reopens it.
"""
from __future__ import annotations

import fcntl
import os
import time
from logging.handlers import TimedRotatingFileHandler
from typing import Optional


class SharedDailyFileHandler(TimedRotatingFileHandler):
    def __init__(self, filename: str, backup_count: int = 30) -> None:
        super().__init__(filename, when="midnight", backupCount=backup_count, encoding="utf-8", delay=True)
        self._opened_inode: Optional[int] = None

    def _open(self):
        stream = super()._open()
        self._opened_inode = os.fstat(stream.fileno()).st_ino
        return stream

    def doRollover(self) -> None:
        with open(self.baseFilename + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the lock file is closed
            if self._rotated_elsewhere():
                self._reopen()
            else:
                super().doRollover()

    def _rotated_elsewhere(self) -> bool:
        """access.log is not the file this worker has open (or, having none open, the file there
        was written after the rollover time): another worker has rotated it."""
        try:
            current = os.stat(self.baseFilename)
        except FileNotFoundError:
            return False  # nothing there: the stock rollover copes with a missing file
        if self.stream is not None and self._opened_inode is not None:
            return current.st_ino != self._opened_inode
        return current.st_mtime >= self.rolloverAt

    def _reopen(self) -> None:
        if self.stream:
            self.stream.close()
            self.stream = None  # opened again (delay=True) by the write that asked for the rollover
        self.rolloverAt = self.computeRollover(int(time.time()))
