"""JWT-shaped access tokens, as the real auth service hands them out.

The signature is an HMAC with a key only the emulator knows, so the emulator can tell its own
tokens from forged or mangled ones without keeping a list of every token it minted.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

_SIGNING_KEY = b"backend-to-api emulator, not a real secret"
_HEADER = {"alg": "HS256", "typ": "JWT"}
AUTH_CLAIM = "https://api.openai.com/auth"


def mint_access_token(subject: str, ttl_seconds: int, account_id: str | None = None) -> str:
    """A token for `subject` that expires `ttl_seconds` from now (negative: already expired)."""
    now = int(time.time())
    payload = {
        "sub": subject,
        "iat": now,
        "exp": now + int(ttl_seconds),
        AUTH_CLAIM: {"chatgpt_account_id": account_id, "user_id": _user_id(subject)},
        "https://api.openai.com/profile": {"email": f"{_user_id(subject)}@emulator.test"},
        "iss": "https://auth.openai.com",
        # A fresh id per mint: a test that revokes one token must not revoke its successor.
        "jti": str(uuid.uuid4()),
    }
    signing_input = f"{_b64(_json_bytes(_HEADER))}.{_b64(_json_bytes(payload))}"
    return f"{signing_input}.{_b64(_sign(signing_input))}"


def decode_payload(token: str) -> dict | None:
    """The payload of a JWT-shaped token, unverified; None when it is not one."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def verify_token(token: str) -> dict | None:
    """The payload when the emulator minted this token (expired or not), else None."""
    payload = decode_payload(token)
    if payload is None:
        return None
    signing_input, _, signature = token.rpartition(".")
    # Compare the text, not decoded bytes: base64 ignores the spare low bits of the last
    # character, so a mangled token could otherwise decode to the right signature.
    expected = _b64(_sign(signing_input))
    return payload if hmac.compare_digest(signature.encode(), expected.encode()) else None


def _user_id(subject: str) -> str:
    return "user-" + hashlib.sha1(subject.encode()).hexdigest()[:24]


def _sign(signing_input: str) -> bytes:
    return hmac.new(_SIGNING_KEY, signing_input.encode("ascii"), hashlib.sha256).digest()


def _json_bytes(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
