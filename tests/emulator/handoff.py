"""The upstream's WebSocket, where it moves a reply (spec backend-api-2026.md 3.6): its own port,
announced by `GET /backend-api/celsius/ws/user` (2026) and `POST /backend-api/register-websocket` /
the conversation POST's JSON `wss_url` (2024).

A gevent StreamServer (one greenlet per connection) speaking the protocol with `websockets`'
sans-I/O `ServerProtocol`, so it runs in the emulator's monkey-patched process without threads of
its own. What a topic or a 2024 response sends is a `Plan` the scenario registers
(handoff_scenarios.py); what each connection did (commands, acks, when it closed) is recorded for
the tests (`GET /_emulator/handoff`).
"""
from __future__ import annotations

import base64
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import gevent
from flask import Blueprint, current_app, g, jsonify
from gevent.lock import Semaphore
from gevent.server import StreamServer
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

handoff_bp = Blueprint("handoff", __name__)


@dataclass
class Plan:
    """What one hand-off sends: `items` (stream_item_id, SSE text), the first `catchups` of them in
    the subscribe reply, live items from `live_from` on (an overlap is a duplicate), `repeat` item
    indexes sent twice, `silent_after` items and then silence for `silence` seconds (None: all),
    `end` marker after the items ("done", "error" or None)."""

    items: list
    catchups: int = 0
    live_from: int = 0
    repeat: tuple = ()
    silent_after: Optional[int] = None
    silence: float = 0.0
    end: Optional[str] = "done"
    interval: float = 0.0


@dataclass
class Connection:
    path: str
    opened: float = field(default_factory=time.time)
    closed: Optional[float] = None
    commands: list = field(default_factory=list)
    acks: list = field(default_factory=list)
    sent_items: int = 0


class HandOffServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._topics: dict[str, Plan] = {}
        self._responses: dict[str, Plan] = {}  # 2024: response id -> plan
        self._latest_response: dict[str, str] = {}  # token subject -> its latest 2024 response id
        self.connections: list[Connection] = []
        self._server: Optional[StreamServer] = None

    def url(self, path: str) -> str:
        with self._lock:
            if self._server is None:
                self._server = StreamServer(("127.0.0.1", 0), self._handle)
                self._server.start()
            return f"ws://127.0.0.1:{self._server.server_port}{path}"

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
            for message in link.messages():
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
            if plan.silent_after is not None and count >= plan.silent_after:
                gevent.sleep(plan.silence)
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

    def messages(self):
        """Text messages until the client closes or goes away (pings are answered by the protocol)."""
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


@handoff_bp.get("/backend-api/celsius/ws/user")
def celsius_user():
    if str(g.token_subject).startswith(METADATA_SUBJECT):
        return jsonify(websocket_url="ws://169.254.169.254/ws/user")
    return jsonify(websocket_url=server().url("/ws/user?verify=emulated"))


@handoff_bp.post("/backend-api/register-websocket")
def register_websocket():
    response_id = server().latest_response(g.token_subject)
    return jsonify(wss_url=server().url(f"/wss/{response_id}"), expires_at="2099-01-01T00:00:00Z")


@handoff_bp.get("/_emulator/handoff")
def handoff_records():
    return jsonify(server().records())
