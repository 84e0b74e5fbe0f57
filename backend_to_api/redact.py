"""Keep secrets out of logs: a mask for the places that mention a key, and a log filter that
scrubs anything token-shaped that slipped into a message anyway (defence in depth)."""
from __future__ import annotations

import hashlib
import logging
import re

# JWTs, Bearer values, refresh-token-like runs of 40+ URL-safe characters, and the value of any
# name=value whose name ends in key/token/secret/password (a query string a client sent, which
# gunicorn quotes whole when it cannot parse the request line), however short.
# Linear in the text however hostile (a client's 1 MB model name is logged): a JWT and a name=value
# are only tried from the start of a run of word characters, not from each of its characters (which
# was quadratic: minutes of a blocked worker); the JWT's runs are possessive (a "." cannot be given back).
_SECRET_PATTERNS = (
    re.compile(r"(?<![\w-])eyJ[\w-]{6,}+\.[\w-]{6,}+\.[\w-]*+"),
    re.compile(r"(?i)(bearer\s+)[^\s,\"']+"),
    re.compile(r"(?i)(refresh_token[\"']?\s*[=:]\s*[\"']?)[^\s&,\"']+"),
    re.compile(r"(?i)((?<![\w-])[\w-]*(?:key|token|secret|password)=)[^\s&,\"'\[]+"),
    re.compile(r"\b[\w-]{40,}\b"),
)


def mask(secret: str) -> str:
    """A recognisable but useless form of a secret: its first 4 and last 4 characters."""
    if not secret:
        return "<empty>"
    if len(secret) <= 12:
        return "***"
    return f"{secret[:4]}...{secret[-4:]}"


def fingerprint(secret: str) -> str:
    """A stable, non-reversible name for a secret (store keys, lock names)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:32]


def scrub(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + "[redacted]", text)
        else:
            text = pattern.sub("[redacted]", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # A traceback's frames and exception text may quote a token too: format it now, scrubbed.
            record.exc_text = scrub(_FORMATTER.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


_FORMATTER = logging.Formatter()
