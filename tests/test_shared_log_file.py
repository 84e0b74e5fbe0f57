"""access.log rotated at midnight by several workers: no line of either day is lost.

Two handlers on the same file stand for two gunicorn workers (separate open files, separate locks,
as in separate processes); midnight is made to pass by moving their rollover time."""
import logging
import os
import time
from logging.handlers import TimedRotatingFileHandler

from backend_to_api.shared_log_file import SharedDailyFileHandler


def record(text: str) -> logging.LogRecord:
    return logging.LogRecord("test", logging.INFO, __file__, 1, text, None, None)


def write(handler, text: str) -> None:
    handler.handle(record(text))


def midnight_passes(*handlers) -> None:
    for handler in handlers:
        handler.rolloverAt = int(time.time()) - 1


def read(path) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def dated_files(directory):
    return [name for name in os.listdir(directory) if name.startswith("access.log.") and not name.endswith(".lock")]


def two_workers(directory, make):
    path = os.path.join(directory, "access.log")
    a, b = make(path), make(path)
    for handler in (a, b):
        handler.setFormatter(logging.Formatter("%(message)s"))
    return path, a, b


def test_the_second_worker_past_midnight_keeps_the_day_the_first_rotated(tmp_path):
    path, a, b = two_workers(tmp_path, SharedDailyFileHandler)
    write(a, "yesterday from a")
    write(b, "yesterday from b")
    midnight_passes(a, b)
    write(a, "today from a")
    write(b, "today from b")
    write(a, "later from a")
    (dated,) = dated_files(tmp_path)
    assert read(tmp_path / dated).splitlines() == ["yesterday from a", "yesterday from b"]
    assert read(path).splitlines() == ["today from a", "today from b", "later from a"]
    a.close(), b.close()


def test_a_worker_that_never_wrote_before_midnight_does_not_rotate_again(tmp_path):
    path, a, b = two_workers(tmp_path, SharedDailyFileHandler)
    write(a, "yesterday from a")
    midnight_passes(a, b)
    write(a, "today from a")
    time.sleep(0.01)
    write(b, "today from b")  # b's first line ever
    (dated,) = dated_files(tmp_path)
    assert read(tmp_path / dated).splitlines() == ["yesterday from a"]
    assert read(path).splitlines() == ["today from a", "today from b"]
    a.close(), b.close()


def test_the_stock_handler_loses_the_day_which_is_why_this_exists(tmp_path):
    path, a, b = two_workers(tmp_path, lambda p: TimedRotatingFileHandler(p, when="midnight", delay=True))
    write(a, "yesterday from a")
    write(b, "yesterday from b")
    midnight_passes(a, b)
    write(a, "today from a")
    write(b, "today from b")
    (dated,) = dated_files(tmp_path)
    assert "yesterday from a" not in read(tmp_path / dated)  # deleted by b's rollover
    a.close(), b.close()
