"""The log filter scrubs tokens from messages and from tracebacks."""
from __future__ import annotations

import logging

from backend_to_api.redact import RedactingFilter, mask

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4eHh4eHh4eHgifQ.c2lnbmF0dXJlc2lnbmF0dXJl"
REFRESH = "rt_" + "A1b2C3d4" * 6


def record(message: str, *args, exc: BaseException = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("t", logging.ERROR, __file__, 1, message, args, exc_info)


def formatted(rec: logging.LogRecord) -> str:
    RedactingFilter().filter(rec)
    return logging.Formatter().format(rec)


def test_messages_and_arguments_are_scrubbed():
    text = formatted(record("calling with %s and Bearer %s refresh_token=%s", JWT, REFRESH, REFRESH))
    assert JWT not in text and REFRESH not in text and "[redacted]" in text


def test_tracebacks_are_scrubbed():
    try:
        raise ValueError(f"upstream said no to {JWT} / {REFRESH}")
    except ValueError as exc:
        text = formatted(record("failed", exc=exc))
    assert "Traceback" in text and JWT not in text and REFRESH not in text


def test_mask_keeps_only_the_ends():
    assert mask(REFRESH) == REFRESH[:4] + "..." + REFRESH[-4:] and mask("short") == "***"


def test_short_secrets_in_a_query_string_are_scrubbed_but_not_other_fields():
    line = "GET /v1/models?api_key=sk-short1&x=1&access_token=abc123&password=hunter2 model=gpt-4o status=200 max_tokens=9"
    text = formatted(record("Invalid HTTP request line: %r", line))
    for secret in ("sk-short1", "abc123", "hunter2"):
        assert secret not in text
    assert "api_key=[redacted]&x=1&access_token=[redacted]" in text
    assert "model=gpt-4o status=200 max_tokens=9" in text


def test_hostile_text_is_scrubbed_in_linear_time():
    # A client's 1 MB model name ends up in the access log line: the JWT and name=value patterns
    # were tried from every character of a long run (quadratic), which blocked a gevent worker,
    # every request on it included, for minutes ("eyJ" * 80000 alone took 26 s).
    import time

    for text in ("x" * 250_000, "é" * 250_000, "eyJ" * 80_000, "key" * 80_000, "eyJ-" * 60_000 + ".",
                 "a-" * 125_000 + "=", "tokentoken" * 25_000 + "=v", "x.eyJ" * 50_000):
        started = time.monotonic()
        text = formatted(record("model=%s status=404", text))
        assert time.monotonic() - started < 1.0, text[:40]
    assert formatted(record("x=%s y", JWT)) == "x=[redacted] y"
