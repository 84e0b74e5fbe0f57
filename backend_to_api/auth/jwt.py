"""Just enough of a JWT to know what an access token is and when it expires (no verification:
the upstream verifies; we only need ``exp`` for the cache TTL)."""
from __future__ import annotations

import base64
import json
from typing import Any, Dict, Optional


def looks_like_access_token(key: str) -> bool:
    # ChatGPT access tokens are JWTs whose header starts '{"alg"' -> base64 "eyJhb" (as the original).
    return key.startswith("eyJhb") and key.count(".") == 2


def jwt_payload(token: str) -> Optional[Dict[str, Any]]:
    try:
        segment = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def jwt_expiry(token: str) -> Optional[float]:
    payload = jwt_payload(token) or {}
    exp = payload.get("exp")
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
