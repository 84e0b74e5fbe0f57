"""The token chain of each conduit turn (conduit.py): which prepares came, which token is next."""
from __future__ import annotations

import secrets
import threading

PREPARE_STATES = ("none", "sent", "success")


class ConduitTurns:
    """trace id -> (prepares seen, last token handed out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turns: dict[str, tuple[int, str]] = {}

    def prepare(self, trace: str, state: str, token: str) -> tuple[str | None, str]:
        """(the new token, "") or (None, what was wrong)."""
        with self._lock:
            seen, last = self._turns.get(trace, (0, ""))
            if seen >= len(PREPARE_STATES):
                return None, "this turn is already prepared"
            if state != PREPARE_STATES[seen]:
                return None, f"client_prepare_state {state!r}, expected {PREPARE_STATES[seen]!r}"
            if token != last:
                return None, "X-Conduit-Token is not the last conduit_token of this turn"
            new = "ct_" + secrets.token_urlsafe(12)
            self._turns[trace] = (seen + 1, new)
            return new, ""

    def redeem(self, trace: str, token: str) -> str:
        """"" when the post may go ahead (the token is then spent), else what was wrong."""
        with self._lock:
            seen, last = self._turns.get(trace, (0, ""))
            if seen != len(PREPARE_STATES):
                return f"this turn was prepared {seen} times, not {len(PREPARE_STATES)}"
            if not token or token != last:
                return "X-Conduit-Token is not the last conduit_token of this turn"
            del self._turns[trace]
            return ""
