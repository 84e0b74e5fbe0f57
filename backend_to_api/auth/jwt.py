"""Just enough of a JWT to know what an access token is and when it expires (no verification:
the upstream verifies; we only need ``exp`` for the cache TTL)."""
from __future__ import annotations

import base64
import json
from typing import Any, Dict, Optional


def looks_like_access_token(key: str) -> bool:
    """A JWT: three dot-separated parts whose first decodes to a JSON header with "alg".

    ChatGPT's header starts '{"alg"' (base64 "eyJhb", the original's whole test); other issuers
    put "typ" first, so decode instead of matching the prefix. Refresh tokens never parse as this.
    """
    if not key.startswith("eyJ") or key.count(".") != 2:
        return False
    header = _decode_segment(key.split(".")[0])
    return isinstance(header, dict) and "alg" in header


def _decode_segment(segment: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:
        return None


def jwt_payload(token: str) -> Optional[Dict[str, Any]]:
    parts = token.split(".")
    data = _decode_segment(parts[1]) if len(parts) == 3 else None
    return data if isinstance(data, dict) else None


def jwt_expiry(token: str) -> Optional[float]:
    payload = jwt_payload(token) or {}
    exp = payload.get("exp")
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
