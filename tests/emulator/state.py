"""Everything the emulator remembers, in one object held by the app (no module globals).

Tests read it back through the control endpoints: which requests came in, which streams ran and
how they ended, which tokens were revoked.
"""
from __future__ import annotations

import copy
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

from .account_models import AccountModels
from .conduit_turns import ConduitTurns

DEFAULT_CONFIG = {"token_ttl": 864000, "refresh_delay": 0.5, "fail_upload": "", "hide_delay": 0.0,
                  "link_base": "", "plain_conversation_refused": "", "fail_prepare": ""}
_CONFIG_TYPES = {"token_ttl": (int,), "refresh_delay": (int, float), "fail_upload": (str,), "hide_delay": (int, float),
                 "link_base": (str,), "plain_conversation_refused": (str,), "fail_prepare": (str,)}
_STRINGS = ("fail_upload", "link_base", "plain_conversation_refused", "fail_prepare")
# fail_upload: which step of the file upload fails ("" none; create 500, put 403, uploaded 500).
# link_base: the scheme://host:port that download and upload links point at ("" this emulator
# itself), e.g. another address, to see whether the proxy fetches what the upstream hands it.
# plain_conversation_refused / fail_prepare: "" off, "*" every caller, else one token subject
# (conduit.py): POST /conversation answers 404 naming /f/conversation; a prepare answers 500.
UPLOAD_STEPS = ("", "create", "put", "uploaded")


class ConfigError(ValueError):
    pass


@dataclass
class StreamRecord:
    stream_id: str
    conversation_id: str
    scenario: str
    encoding: str
    subject: str | None  # the refresh token the access token was minted from
    account_id: str | None  # the Chatgpt-Account-Id header, when sent
    started: float
    ended: float | None = None
    events_sent: int = 0
    closed_early: bool = False  # the client went away before the reply ended
    outcome: str = "streaming"  # then: completed | client_closed | dropped | error
    client_port: int = 0  # the caller's TCP port: the same port twice is one kept-alive connection
    # {message_id, path} of each sandbox: link sent: interpreter/download serves these, nothing else
    sandbox_files: list = field(default_factory=list)

    def end(self, outcome: str) -> None:
        if self.ended is None:  # the first ending wins; close() may come after the generator's
            self.ended = time.time()
            self.outcome = outcome
            self.closed_early = outcome == "client_closed"


class EmulatorState:
    def __init__(self, config: dict | None = None) -> None:
        self._lock = threading.Lock()
        self._initial_config = {**DEFAULT_CONFIG, **_checked(config or {})}
        self.handoff = None  # handoff.py's WebSocket server (set by app.py), which scenarios plan on
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.config = dict(self._initial_config)
            self._requests: list[dict] = []
            self._streams: list[StreamRecord] = []
            self._revoked: set[str] = set()
            self._files: dict[str, dict] = {}
            self.account_models = AccountModels()  # GET /backend-api/models per account
            self.conduit = ConduitTurns()  # the token chain of each conduit turn (conduit.py)
            # conversation id -> (time it shows, message) for GET /conversation/<id> (pictures.py)
            self._conversations: dict[str, list[tuple[float, dict]]] = {}

    def configure(self, changes: dict) -> dict:
        checked = _checked(changes)
        with self._lock:
            self.config.update(checked)
            return dict(self.config)

    def record_request(self, record: dict) -> None:
        with self._lock:
            self._requests.append(record)

    def requests(self) -> list[dict]:
        with self._lock:
            return list(self._requests)

    def revoke(self, access_token: str) -> None:
        with self._lock:
            self._revoked.add(access_token)

    def is_revoked(self, access_token: str) -> bool:
        with self._lock:
            return access_token in self._revoked

    def new_file(self, record: dict) -> None:
        with self._lock:
            self._files[record["file_id"]] = record

    def update_file(self, file_id: str, **changes) -> dict | None:
        """The file's record after the changes; None for an id never created (or reset since)."""
        with self._lock:
            record = self._files.get(file_id)
            if record is not None:
                record.update(changes)
            return dict(record) if record is not None else None

    def files(self) -> list[dict]:
        with self._lock:
            return [dict(record) for record in self._files.values()]

    def store_message(self, conversation_id: str, message: dict, ready_at: float) -> None:
        """A message of a stored conversation, shown from ``ready_at`` on (a later version of the
        same id replaces it from its own time on)."""
        with self._lock:
            self._conversations.setdefault(conversation_id, []).append((ready_at, copy.deepcopy(message)))

    def conversation_messages(self, conversation_id: str) -> list[dict] | None:
        """The stored messages whose time has come, latest version of each, in order; None if unknown."""
        now = time.time()
        with self._lock:
            stored = self._conversations.get(conversation_id)
            if stored is None:
                return None
            latest: dict[str, dict] = {}
            for ready_at, message in stored:
                if ready_at <= now:
                    latest[message["id"]] = message
            return list(latest.values())

    def conversation_has_file(self, conversation_id: str, asset_pointer: str) -> bool:
        for message in self.conversation_messages(conversation_id) or []:
            parts = message.get("content", {}).get("parts") or []
            if any(isinstance(p, dict) and p.get("asset_pointer") == asset_pointer for p in parts):
                return True
        return False

    def new_stream(self, **fields) -> StreamRecord:
        record = StreamRecord(stream_id=str(uuid.uuid4()), started=time.time(), **fields)
        with self._lock:
            self._streams.append(record)
        return record

    def streams(self) -> list[dict]:
        with self._lock:
            return [asdict(record) for record in self._streams]

    def served_sandbox_file(self, conversation_id: str, message_id: str, path: str) -> bool:
        """Whether a reply of that conversation linked ``path`` in that very message."""
        wanted = {"message_id": message_id, "path": path}
        with self._lock:
            return any(record.conversation_id == conversation_id and wanted in record.sandbox_files
                       for record in self._streams)


def _checked(changes: dict) -> dict:
    if not isinstance(changes, dict):
        raise ConfigError("config must be a JSON object")
    for key, value in changes.items():
        if key not in _CONFIG_TYPES:
            raise ConfigError(f"unknown config key {key!r}; known: {', '.join(_CONFIG_TYPES)}")
        if isinstance(value, bool) or not isinstance(value, _CONFIG_TYPES[key]):
            raise ConfigError(f"config {key!r} must be a {'string' if key in _STRINGS else 'number'}")
    if changes.get("fail_upload", "") not in UPLOAD_STEPS:
        raise ConfigError(f"config 'fail_upload' must be one of {UPLOAD_STEPS}")
    if changes.get("link_base") and not changes["link_base"].startswith(("http://", "https://")):
        raise ConfigError("config 'link_base' must be an http(s) scheme://host:port, or empty")
    for delay in ("refresh_delay", "hide_delay"):
        if changes.get(delay, 0) < 0:
            raise ConfigError(f"config {delay!r} must not be negative")
    return dict(changes)
