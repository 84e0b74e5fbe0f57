"""A reply the upstream moved to its WebSocket, read as if it were the rest of the HTTP body.

Both readers answer ``read(timeout)`` and ``close(settle)`` as upstream/body.py's UpstreamBody does
(SSE bytes, None after a silent ``timeout``, b"" at the end), so ReplyStream runs the same SSE
decoder, interpreter, silence limit, keep-alives and client-gone checks over them.

- 2026 (spec backend-api-2026.md 3.6): ``GET /backend-api/celsius/ws/user`` -> ``websocket_url``;
  connect and subscribe commands, then the turn's topic from offset "0"; frames are one JSON object
  or an array of them; a ``reply`` lists earlier items in ``catchups``, a ``message`` carries one
  item; an item's ``encoded_item`` is SSE text; ``stream_item_id`` de-duplicates (catch-ups and
  live items overlap); an item holding ``data: [DONE]`` or an end marker (``done``/``error``) ends it.
- 2024 (spec backend-api.md; original-behaviour.md 8.4): the conversation POST answered JSON with
  ``wss_url`` (or only a ``response_id``: then ``POST /backend-api/register-websocket`` names it);
  frames ``{"sequenceId", "data": {"body": <base64 SSE>}}``, acknowledged every 80 frames.
"""
from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Any, Callable, Iterator, List, Mapping, Optional, Tuple

import orjson
import websocket

from ..errors import UpstreamError
from .client import USER_AGENT
from .steps import Deadline, Steps
from .ws_answer import WebSocketAnswer
from .ws_dial import WebSocketDialer

log = logging.getLogger(__name__)

SILENCE_LIMIT = 120.0  # seconds without a frame that end a handed-off reply ([A]), if the read timeout is longer
PING_EVERY = 25.0  # seconds, as the web page and [A] do: idle sockets are dropped by proxies (handoff_ping_interval)
ACK_EVERY = 80  # 2024 frames acknowledged per this many ([C] chatFormat.py)
SERVICE_TOPICS = ("calpico-chatgpt", "conversations", "app_notifications")  # what the page subscribes to
END_TYPES = ("done", "error")
DONE_LINE = b"data: [DONE]"
# What an upstream end marker of type "error" becomes: an error event the interpreter reports.
ERROR_ITEM = b'data: {"type": "error", "error": "The upstream ended the handed-off reply with an error."}\n\n'

# The socket's URL carries its own credential: our bearer token never goes to a host the upstream named.
WS_HEADERS = {"User-Agent": USER_AGENT}
Headers = Callable[[], Mapping[str, str]]  # the current token's headers (it may have been refreshed)
Refresh = Callable[[], None]  # replaces the chat's access token with a fresh one (ApiError when it cannot)


class HandOff:
    """Opens the WebSocket a reply moved to, with one chat's token (``headers``; ``refresh`` once when
    the upstream answers 401, as the conversation call does), in steps (steps.py): the lookup is a
    small blocking call, the dial yields whenever the caller's slice of time ends."""

    def __init__(self, client, dialer: WebSocketDialer, headers: Headers, refresh: Refresh,
                 ping_every: float = PING_EVERY) -> None:
        self._client = client  # upstream/client.py's UpstreamClient: root, requests session, timeouts
        self._dialer = dialer
        self._headers = headers
        self._refresh = refresh
        self._ping_every = ping_every

    def follow_topic(self, topic_id: str, deadline: Deadline) -> Steps["TopicReader"]:
        """2026: the turn's topic on the account's WebSocket."""
        url = self._backend_json("GET", "/backend-api/celsius/ws/user", "websocket_url")
        if deadline.remaining() <= 0:
            yield  # the lookup took the slice: the caller looks at its client before we dial
        ws = yield from self._dialer.dial(url, WS_HEADERS, deadline)
        try:
            commands = [{"id": 1, "command": {"type": "connect", "presence": {"type": "presence",
                                                                             "state": "background"}}}]
            commands += [{"id": 2 + n, "command": {"type": "subscribe", "topic_id": topic}}
                         for n, topic in enumerate(SERVICE_TOPICS)]
            ws.send(orjson.dumps(commands).decode())
            ws.send(orjson.dumps({"id": 2 + len(SERVICE_TOPICS), "command": {
                "type": "subscribe", "topic_id": topic_id, "offset": "0"}}).decode())
        except (OSError, websocket.WebSocketException) as exc:
            ws.close()
            raise _failed(f"subscribing failed: {exc}")
        return TopicReader(ws, topic_id, self._ping_every)

    def follow_answer(self, answer: WebSocketAnswer, deadline: Deadline) -> Steps["SequenceReader"]:
        """2024: the socket the POST's JSON names (registered first when it names none)."""
        url = _text(answer.document.get("wss_url"))
        if not url:
            url = self._backend_json("POST", "/backend-api/register-websocket", "wss_url")
            if deadline.remaining() <= 0:
                yield  # as in follow_topic
        ws = yield from self._dialer.dial(url, WS_HEADERS, deadline)
        return SequenceReader(ws, _text(answer.document.get("response_id")), self._ping_every)

    def _backend_json(self, method: str, path: str, key: str) -> str:
        """``key`` of the JSON ``path`` answers; a 401 refreshes the token once and asks again."""
        status, document = self._backend_call(method, path)
        if status == 401:
            log.info("upstream answered 401 to %s; refreshing the token once", path)
            self._refresh()
            status, document = self._backend_call(method, path)
            if status == 401:
                raise UpstreamError(502, f"The upstream moved the reply to its WebSocket but refused the access "
                                         f"token for it ({path}: HTTP 401), also after a refresh.", 401,
                                    code="upstream_handoff_failed")
        value = document.get(key) if status == 200 else None
        if not _text(value):
            raise _failed(f"{path} answered {status} without {key}")
        return value

    def _backend_call(self, method: str, path: str) -> Tuple[int, Mapping[str, Any]]:
        timeout = (self._client.timeout[0], 30)
        try:
            response = self._client.session.request(method, f"{self._client.root}{path}", headers=self._headers(),
                                                    timeout=timeout)
            with response:
                return response.status_code, _mapping(response.json()) if response.status_code == 200 else {}
        except (OSError, ValueError) as exc:  # requests' errors are OSErrors, its JSON errors ValueErrors
            raise _failed(f"{path}: {exc}")


class _SocketReader:
    """What both readers share: timed receives, pings, the end, closing."""

    def __init__(self, ws: websocket.WebSocket, ping_every: float) -> None:
        self._ws = ws
        self._pending: List[bytes] = []
        self._ended = False
        self._ping_every = ping_every
        self._last_ping = time.monotonic()

    def read(self, timeout: float) -> Optional[bytes]:
        """SSE bytes, None when nothing came within ``timeout``, b"" once the reply has ended."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            if self._ended:
                return b""
            frame = self._receive(deadline)
            if frame is None:
                return None
            self._take(frame)
        return self._pending.pop(0)

    def close(self, settle: bool = False) -> None:  # noqa: ARG002 (a socket is never reused)
        self._ended = True
        try:
            self._ws.close(timeout=0.5)  # our close frame; the peer's answer is waited for briefly
        except (OSError, websocket.WebSocketException):
            pass

    def _receive(self, deadline: float) -> Optional[Any]:
        """The next JSON frame; None on a silent timeout. A closed socket ends the reply."""
        try:
            opcode, data = self._receive_pinging(deadline)
        except websocket.WebSocketTimeoutException:
            return None
        except (OSError, websocket.WebSocketException) as exc:
            log.info("the hand-off WebSocket ended: %s", exc)
            self._ended = True
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self._ended = True  # without [DONE]: the reply is incomplete, as a cut HTTP body is
            return None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return None  # noise; the silence limit still applies

    def _receive_pinging(self, deadline: float) -> Tuple[int, bytes]:
        """One data frame by ``deadline`` (else WebSocketTimeoutException), pinging whenever due
        meanwhile: a ping alone falling due does not end the caller's tick early."""
        while True:
            self._ping_when_due()
            wait = min(deadline, self._last_ping + self._ping_every) - time.monotonic()
            self._ws.settimeout(max(wait, 0.01))
            try:
                return self._ws.recv_data()
            except websocket.WebSocketTimeoutException:
                if deadline - time.monotonic() <= 0.01:
                    raise

    def _ping_when_due(self) -> None:
        if time.monotonic() - self._last_ping >= self._ping_every:
            self._last_ping = time.monotonic()
            try:
                self._ws.ping()
            except (OSError, websocket.WebSocketException):
                pass  # the next receive reports the broken socket

    def _take(self, frame: Any) -> None:
        raise NotImplementedError

    def _add(self, sse: bytes) -> None:
        self._pending.append(sse if sse.endswith(b"\n\n") else sse + b"\n\n")
        if DONE_LINE in sse:
            self._ended = True


class TopicReader(_SocketReader):
    """2026: the items of one topic, each once, in order."""

    def __init__(self, ws: websocket.WebSocket, topic_id: str, ping_every: float = PING_EVERY) -> None:
        super().__init__(ws, ping_every)
        self._topic = topic_id
        self._seen: set = set()

    def _take(self, frame: Any) -> None:
        for item in _topic_items(frame, self._topic):
            if self._ended:
                return
            item_id = item.get("stream_item_id")
            if item_id is not None:
                if item_id in self._seen:
                    continue
                self._seen.add(item_id)
            encoded = item.get("encoded_item")
            if isinstance(encoded, str) and encoded:
                self._add(encoded.encode())
            if item.get("type") in END_TYPES:
                if item.get("type") == "error":
                    self._add(ERROR_ITEM)
                self._ended = True


class SequenceReader(_SocketReader):
    """2024: base64 SSE bodies in sequence, acknowledged."""

    def __init__(self, ws: websocket.WebSocket, response_id: str, ping_every: float = PING_EVERY) -> None:
        super().__init__(ws, ping_every)
        self._response_id = response_id
        self._unacknowledged = 0

    def _take(self, frame: Any) -> None:
        for entry in frame if isinstance(frame, list) else (frame,):
            body, sequence_id = _sequence_body(entry, self._response_id)
            if body is None:
                continue
            self._unacknowledged += 1
            if self._unacknowledged >= ACK_EVERY and sequence_id is not None:
                self._acknowledge(sequence_id)
            if body:
                self._add(body)

    def _acknowledge(self, sequence_id: Any) -> None:
        self._unacknowledged = 0
        try:
            self._ws.send(orjson.dumps({"type": "sequenceAck", "sequenceId": sequence_id}).decode())
        except (OSError, websocket.WebSocketException):
            pass  # the next receive reports the broken socket


def _topic_items(frame: Any, topic: str) -> Iterator[Mapping[str, Any]]:
    """The stream items a frame carries for ``topic``: catch-ups of a reply, or a message's one."""
    for entry in frame if isinstance(frame, list) else (frame,):
        if not isinstance(entry, dict):
            continue
        kind = entry.get("type")
        if kind == "reply" and _mapping(entry.get("reply")).get("catchups") is not None:
            if entry.get("topic_id") in (None, topic):
                catchups = _mapping(entry.get("reply")).get("catchups")
                for catchup in catchups if isinstance(catchups, list) else ():
                    item = _stream_item(catchup)
                    if item is not None:
                        yield item
        elif kind == "message" and entry.get("topic_id") == topic:
            item = _stream_item(entry.get("payload"))
            if item is not None:
                yield item


def _stream_item(value: Any, depth: int = 3) -> Optional[Mapping[str, Any]]:
    """The innermost ``payload`` that is an item (``encoded_item`` or an end marker): a catch-up may be
    the whole message, its payload or the item itself (the envelope is uncertain, spec section 6)."""
    while isinstance(value, dict) and depth >= 0:
        if "encoded_item" in value or value.get("type") in END_TYPES:
            return value
        value, depth = value.get("payload"), depth - 1
    return None


def _sequence_body(entry: Any, response_id: str) -> Tuple[Optional[bytes], Any]:
    """The decoded SSE of one 2024 frame (None: not one of ours or not decodable) and its sequence id."""
    data = _mapping(_mapping(entry).get("data"))
    if response_id and _text(data.get("response_id") or _mapping(entry).get("response_id")) not in ("", response_id):
        return None, None
    body = data.get("body")
    if not isinstance(body, str):
        return None, None
    try:
        return base64.b64decode(body, validate=True), _mapping(entry).get("sequenceId")
    except (binascii.Error, ValueError):
        return None, None


def _failed(detail: str) -> UpstreamError:
    return UpstreamError(502, f"The upstream moved the reply to its WebSocket, which failed: {detail}",
                         code="upstream_handoff_failed")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
