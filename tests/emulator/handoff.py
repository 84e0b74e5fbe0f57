"""The upstream's WebSocket, where it moves a reply (spec backend-api-2026.md 3.6): its own port,
announced by `GET /backend-api/celsius/ws/user` (2026) and `POST /backend-api/register-websocket` /
the conversation POST's JSON `wss_url` (2024).

A gevent StreamServer (one greenlet per connection) speaking the protocol with `websockets`'
sans-I/O `ServerProtocol`, so it runs in the emulator's monkey-patched process without threads of
its own. What a topic or a 2024 response sends is a `Plan` the scenario registers
(handoff_scenarios.py); what each connection did (commands, acks, when it closed) is recorded for
the tests (`GET /_emulator/handoff`), pings included. `POST /_emulator/handoff/lookup` makes the
socket's lookup (celsius/ws/user, register-websocket) slow or 401 for one token subject.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import gevent
from flask import Blueprint, current_app, g, has_request_context, jsonify, request
from gevent.lock import Semaphore
from gevent.server import StreamServer
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

handoff_bp = Blueprint("handoff", __name__)
_TLS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tls")
TLS_FILES = {"certfile": os.path.join(_TLS_DIR, "cert.pem"), "keyfile": os.path.join(_TLS_DIR, "key.pem")}


@dataclass
class Plan:
    """What one hand-off sends: `items` (stream_item_id, SSE text), the first `catchups` of them in
    the subscribe reply, live items from `live_from` on (an overlap is a duplicate), `repeat` item
    indexes sent twice, `silent_after` items and then silence for `silence` seconds (None: all),
    `end` marker after the items ("done", "error" or None); `resume`: after the silence the rest
    of the items (and the end marker) still come."""

    items: list
    catchups: int = 0
    live_from: int = 0
    repeat: tuple = ()
    silent_after: Optional[int] = None
    silence: float = 0.0
    end: Optional[str] = "done"
    interval: float = 0.0
    resume: bool = False


@dataclass
class LookupRule:
    """For one token subject: the next `refuse` lookups answer 401; each waits `delay` s first."""

    refuse: int = 0
    delay: float = 0.0


@dataclass
class Connection:
    path: str
    opened: float = field(default_factory=time.time)
    closed: Optional[float] = None
    commands: list = field(default_factory=list)
    acks: list = field(default_factory=list)
    pings: list = field(default_factory=list)  # when each of the client's pings came
    sent_items: int = 0


class HandOffServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._topics: dict[str, Plan] = {}
        self._responses: dict[str, Plan] = {}  # 2024: response id -> plan
        self._latest_response: dict[str, str] = {}  # token subject -> its latest 2024 response id
        self.connections: list[Connection] = []
        self._lookup_rules: dict[str, LookupRule] = {}
        self._server: Optional[StreamServer] = None
        self._scheme = "ws"

    def url(self, path: str) -> str:
        """A socket URL on this server: wss:// (tests/tls's certificate) when the emulator serves
        HTTPS, as the first request that asks for one shows."""
        with self._lock:
            if self._server is None:
                secure = has_request_context() and request.scheme == "https"
                self._server = StreamServer(("127.0.0.1", 0), self._handle, **(TLS_FILES if secure else {}))
                self._server.start()
                self._scheme = "wss" if secure else "ws"
            return f"{self._scheme}://127.0.0.1:{self._server.server_port}{path}"

    def plan_topic(self, topic: str, plan: Plan) -> None:
        with self._lock:
            self._topics[topic] = plan

    def plan_response(self, response_id: str, subject: str, plan: Plan) -> None:
        with self._lock:
            self._responses[response_id] = plan
            self._latest_response[subject] = response_id

    def latest_response(self, subject: str) -> str:
        with self._lock:
            return self._latest_response.get(subject, "")

    def set_lookup_rule(self, subject: str, rule: LookupRule) -> None:
        with self._lock:
            self._lookup_rules[subject] = rule

    def lookup_answer(self, subject: str) -> tuple[float, bool]:
        """(seconds to wait, whether to refuse with 401) for this subject's next lookup."""
        with self._lock:
            rule = self._lookup_rules.get(subject)
            if rule is None:
                return 0.0, False
            refuse = rule.refuse > 0
            rule.refuse -= refuse
            return rule.delay, refuse

    def records(self) -> list[dict]:
        with self._lock:
            return [vars(c).copy() for c in self.connections]

    # --- one connection -------------------------------------------------------------------------

    def _handle(self, sock, address) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the emulator's HTTP server does
        link = _Link(sock)
        request = link.handshake()
        if request is None:
            return
        record = Connection(request.path)
        with self._lock:
            self.connections.append(record)
        try:
            if request.path.startswith("/wss/"):
                plan = self._responses.get(request.path.rsplit("/", 1)[-1])
                sender = gevent.spawn(self._send_2024, link, plan, record) if plan else None
            else:
                sender = None
            self._read_loop(link, record, sender)
        finally:
            record.closed = time.time()
            link.close()

    def _read_loop(self, link: "_Link", record: Connection, sender) -> None:
        senders = [sender] if sender else []
        try:
            for message in link.messages(lambda: record.pings.append(time.time())):
                frames = json.loads(message)
                for frame in frames if isinstance(frames, list) else [frames]:
                    if frame.get("type") == "sequenceAck":
                        record.acks.append(frame.get("sequenceId"))
                        continue
                    record.commands.append(frame)
                    senders += self._answer(link, frame, record)
        finally:
            for greenlet in senders:
                greenlet.kill(block=False)

    def _answer(self, link: "_Link", frame: dict, record: Connection) -> list:
        command = frame.get("command") or {}
        topic = command.get("topic_id")
        plan = self._topics.get(topic) if command.get("type") == "subscribe" else None
        if plan is None:
            link.send({"type": "reply", "id": frame.get("id"), "reply": {"type": "ok"}})
            return []
        catchups = [_envelope(item_id, text)["payload"] for item_id, text in plan.items[:plan.catchups]]
        link.send({"type": "reply", "id": frame.get("id"), "topic_id": topic, "reply": {"catchups": catchups}})
        return [gevent.spawn(self._send_topic, link, topic, plan, record)]

    def _send_topic(self, link: "_Link", topic: str, plan: Plan, record: Connection) -> None:
        indexes = list(range(plan.live_from, len(plan.items)))
        for index in plan.repeat:
            indexes.insert(indexes.index(index) + 1, index)
        for count, index in enumerate(indexes):
            if plan.silent_after is not None and count == plan.silent_after:
                gevent.sleep(plan.silence)
                if not plan.resume:
                    return
            if plan.interval:
                gevent.sleep(plan.interval)
            item_id, text = plan.items[index]
            link.send([{"type": "message", "topic_id": topic, **_envelope(item_id, text)}])
            record.sent_items += 1
        if plan.end:
            link.send({"type": "message", "topic_id": topic, "payload": {
                "type": "conversation-turn-stream", "payload": {"type": plan.end}}})

    def _send_2024(self, link: "_Link", plan: Plan, record: Connection) -> None:
        for sequence_id, (item_id, text) in enumerate(plan.items):
            if plan.silent_after is not None and sequence_id >= plan.silent_after:
                gevent.sleep(plan.silence)
                return
            link.send({"sequenceId": sequence_id, "data": {
                "conversation_id": item_id.split(":")[0], "response_id": item_id.split(":")[1],
                "body": base64.b64encode(text.encode()).decode()}})
            record.sent_items += 1


def _envelope(item_id: str, text: str) -> dict:
    return {"payload": {"type": "conversation-turn-stream", "payload": {
        "type": "stream-item", "stream_item_id": item_id, "encoded_item": text}}}


class _Link:
    """One server-side WebSocket: handshake, text messages in, JSON out (sends serialized)."""

    def __init__(self, sock) -> None:
        self._sock = sock
        self._protocol = ServerProtocol()
        self._send_lock = Semaphore()

    def handshake(self) -> Optional[Request]:
        while True:
            data = self._sock.recv(65536)
            if not data:
                return None
            self._protocol.receive_data(data)
            requests = [e for e in self._protocol.events_received() if isinstance(e, Request)]
            if requests:
                self._protocol.send_response(self._protocol.accept(requests[0]))
                self._flush()
                return requests[0]

    def messages(self, on_ping):
        """Text messages until the client closes or goes away (pings are answered by the protocol,
        and reported to ``on_ping``)."""
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                return
            if not data:
                self._protocol.receive_eof()
                return
            self._protocol.receive_data(data)
            for event in self._protocol.events_received():
                if isinstance(event, Frame) and event.opcode == Opcode.TEXT:
                    yield event.data.decode()
                elif isinstance(event, Frame) and event.opcode == Opcode.PING:
                    on_ping()
                elif isinstance(event, Frame) and event.opcode == Opcode.CLOSE:
                    self._flush_locked()
                    return
            self._flush_locked()

    def send(self, value: Any) -> None:
        with self._send_lock:
            try:
                self._protocol.send_text(json.dumps(value).encode())
                self._flush()
            except Exception:  # the client is gone: the reader ends the connection
                pass

    def _flush_locked(self) -> None:
        with self._send_lock:
            self._flush()

    def _flush(self) -> None:
        for data in self._protocol.data_to_send():
            if data:
                self._sock.sendall(data)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


def server() -> HandOffServer:
    return current_app.extensions["emulator_handoff"]


# A token whose refresh token starts so is handed a socket on the cloud metadata address: the proxy
# must refuse it without connecting (the same address checks as every upstream URL).
METADATA_SUBJECT = "rt-ws-metadata"


def _lookup_refused() -> bool:
    """Applies the caller's LookupRule: waits its delay; True when this lookup answers 401."""
    delay, refuse = server().lookup_answer(str(g.token_subject))
    if delay:
        gevent.sleep(delay)
    return refuse


REFUSED = {"detail": {"code": "token_expired", "message": "Your authentication token has expired."}}


@handoff_bp.get("/backend-api/celsius/ws/user")
def celsius_user():
    if _lookup_refused():
        return jsonify(REFUSED), 401
    if str(g.token_subject).startswith(METADATA_SUBJECT):
        return jsonify(websocket_url="ws://169.254.169.254/ws/user")
    return jsonify(websocket_url=server().url("/ws/user?verify=emulated"))


@handoff_bp.post("/backend-api/register-websocket")
def register_websocket():
    if _lookup_refused():
        return jsonify(REFUSED), 401
    response_id = server().latest_response(g.token_subject)
    return jsonify(wss_url=server().url(f"/wss/{response_id}"), expires_at="2099-01-01T00:00:00Z")


@handoff_bp.get("/_emulator/handoff")
def handoff_records():
    return jsonify(server().records())


@handoff_bp.post("/_emulator/handoff/lookup")
def handoff_lookup_rule():
    """{"subject": refresh token, "refuse": lookups to answer 401, "delay": seconds before each}."""
    body = request.get_json(silent=True, force=True)
    body = body if isinstance(body, dict) else {}
    subject, refuse, delay = body.get("subject"), body.get("refuse", 0), body.get("delay", 0)
    if not isinstance(subject, str) or not subject or not isinstance(refuse, int) \
            or not isinstance(delay, (int, float)) or refuse < 0 or delay < 0:
        return jsonify(detail="subject (string), refuse (int >= 0), delay (seconds >= 0)"), 400
    server().set_lookup_rule(subject, LookupRule(refuse, float(delay)))
    return jsonify(ok=True)
