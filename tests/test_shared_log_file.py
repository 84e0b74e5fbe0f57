"""access.log written by several workers across rollovers: every line lands in exactly one file.

Each writer is a real process (its own handler, open file and locks, as a gunicorn worker has),
appending numbered lines as fast as it can. The rollover comes every second instead of at midnight
(the handler's `when`, as TimedRotatingFileHandler spells it), and the writers stop once they have
seen the file rotated a few times, so no test waits on a timer."""
from __future__ import annotations

import collections
import glob
import logging
import os
import subprocess
import sys
import time
from logging.handlers import TimedRotatingFileHandler

from .conftest import ROOT

WRITER = """
import logging, os, sys, time
from backend_to_api.shared_log_file import shared_daily_file

path, name, rotations, kept = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
handler = shared_daily_file(path, kept=kept, when="S", interval=1)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("writer")
log.addHandler(handler)
log.propagate = False
written, started, files = 0, time.monotonic(), set()
while time.monotonic() - started < 30:
    log.warning("%s %d", name, written)
    written += 1
    if written % 50 == 0:
        try:
            files.add(os.stat(path).st_ino)  # a new access.log after each rollover
        except FileNotFoundError:
            pass  # just rotated away; the next write makes the new one
        if len(files) > rotations:
            break
        time.sleep(0.002)  # leave the shared CPUs some room; the count, not the pace, matters
handler.close()
print(written)
"""


def run_writers(path: str, count: int, rotations: int, kept: int = 1000) -> dict:
    """{writer name: lines it wrote}, once every writer saw access.log rotated ``rotations`` times."""
    writers = {f"w{index}": subprocess.Popen([sys.executable, "-c", WRITER, path, f"w{index}", str(rotations), str(kept)],
                                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
               for index in range(count)}
    written = {}
    for name, process in writers.items():
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0, f"writer {name} failed"
        written[name] = int(out)
    return written


def lines_in(path: str) -> collections.Counter:
    found = collections.Counter()
    for name in glob.glob(path + "*"):
        if not name.endswith(".lock"):
            with open(name, encoding="utf-8") as handle:
                found.update(handle.read().splitlines())
    return found


def test_every_line_of_several_writers_survives_the_rollovers(tmp_path):
    path = str(tmp_path / "access.log")
    written = run_writers(path, count=4, rotations=4)
    found = lines_in(path)
    expected = collections.Counter(f"{name} {n}" for name, total in written.items() for n in range(total))
    lost = expected - found
    doubled = {line: times for line, times in found.items() if times > 1}
    assert not lost, f"{len(lost)} of {sum(expected.values())} lines lost, e.g. {sorted(lost)[:3]}"
    assert not doubled and found == expected
    assert len(glob.glob(path + ".*")) >= 4  # the rollovers did happen, and each kept its lines


def test_only_the_configured_number_of_old_files_is_kept(tmp_path):
    path = str(tmp_path / "access.log")
    run_writers(path, count=1, rotations=3, kept=1)
    assert len(glob.glob(path + ".*")) == 1
    assert not glob.glob(str(tmp_path / "access.log.lock"))  # the lock file is the library's .__access.lock


def test_the_stock_handler_loses_the_day_which_is_why_this_exists(tmp_path):
    """Two stock handlers on one file, as two workers: the second past midnight deletes the first's day."""
    path = str(tmp_path / "access.log")
    a, b = (TimedRotatingFileHandler(path, when="midnight", delay=True) for _ in range(2))
    for handler, text in ((a, "yesterday from a"), (b, "yesterday from b")):
        handler.handle(logging.LogRecord("t", logging.INFO, __file__, 1, text, None, None))
    for handler in (a, b):
        handler.rolloverAt = int(time.time()) - 1  # midnight has passed
        handler.handle(logging.LogRecord("t", logging.INFO, __file__, 1, "today", None, None))
    assert "yesterday from a" not in lines_in(path)
    a.close(), b.close()
