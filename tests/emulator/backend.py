"""/backend-api/*: the endpoints of the real upstream that the proxy calls."""
from __future__ import annotations

import time
import uuid

from flask import Blueprint, Response, current_app, g, jsonify, request

from .actions import action_problem, action_result, user_action
from .directive import Directive, DirectiveError, directive_for
from .encodings import encoder_for
from .protocol_model import protocol_directive
from .scenarios import HTTP_ERROR, ReplyContext, http_error, stream_scenario
from .handoff_scenarios import WSS_ANSWERS, wss_answer
from .state import EmulatorState
from .streaming import ReplyStream
from .tokens import verify_token
from .voice import is_speech_payload, speech_reply

backend_bp = Blueprint("backend", __name__, url_prefix="/backend-api")

UNPARSABLE_TOKEN = {
    "detail": "Could not parse your authentication token. Please try signing in again."}
EXPIRED_TOKEN = {"detail": {"message": "Your authentication token has expired.",
                            "code": "token_expired"}}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}


def _state() -> EmulatorState:
    return current_app.extensions["emulator"]


def authorize(state: EmulatorState) -> tuple[Response, int] | None:
    """None when the bearer token is one we minted, unexpired and unrevoked; else the 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    payload = verify_token(token) if scheme.lower() == "bearer" else None
    if payload is None or state.is_revoked(token):
        return jsonify(UNPARSABLE_TOKEN), 401
    if not isinstance(payload.get("exp"), (int, float)) or payload["exp"] <= time.time():
        return jsonify(EXPIRED_TOKEN), 401
    g.token_subject = payload.get("sub")
    g.account_id = request.headers.get("Chatgpt-Account-Id")
    return None


# What a 2026 upstream that wants the conduit flow might answer the plain POST (config
# plain_conversation_refused; conduit.py serves the flow itself).
PLAIN_REFUSAL = {"detail": "This endpoint moved: use /backend-api/f/conversation (conduit flow)."}


def refuses(setting: str) -> bool:
    """A config switch ("" off, "*" every caller, else one token subject) applies to this caller."""
    return bool(setting) and setting in ("*", g.get("token_subject"))


@backend_bp.post("/conversation")
def conversation():
    if refuses(_state().config["plain_conversation_refused"]):
        return jsonify(PLAIN_REFUSAL), 404
    return serve_conversation(request.get_json(silent=True, force=True))


def serve_conversation(payload: object) -> Response | tuple[Response, int]:
    """A conversation POST, plain or conduit (conduit.py): every scenario the same way."""
    if user_action(payload) is not None:
        return _action_answer(payload)
    if is_speech_payload(payload):  # /v1/audio/speech: only an assistant message (voice.py)
        return speech_reply(payload)
    problem = payload_problem(payload)
    if problem:
        return jsonify(detail=problem), 422
    user_message = last_user_message(payload["messages"])
    try:
        # A conversation prompted with the tool / response-format protocol gets a model that
        # follows it (protocol_model.py); any other plays the last user message's directive.
        directive = (protocol_directive(payload["messages"])
                     or directive_for(message_text(user_message)))
        if directive.emu == HTTP_ERROR:
            return _http_error(directive)
        scenario = None if directive.emu in WSS_ANSWERS else stream_scenario(directive.emu)
    except DirectiveError as exc:
        return jsonify(detail=str(exc)), 422
    ctx = ReplyContext(directive=directive,
                       conversation_id=payload.get("conversation_id") or str(uuid.uuid4()),
                       user_message=user_message,
                       model_slug=directive.model_slug or payload["model"])
    if scenario is None:  # the 2024 WebSocket hand-off: JSON, the reply on the socket (handoff.py)
        ctx.state = _state()
        return wss_answer(ctx, g.token_subject)
    return _reply(ctx, scenario)


def _action_answer(payload: dict) -> Response | tuple[Response, int]:
    """A GPT action's confirmation answered (actions.py): it has no user message to read."""
    problem = action_problem(payload)
    if problem:
        return jsonify(detail=problem), 422
    ctx = ReplyContext(directive=Directive(emu="action_result"), conversation_id=payload["conversation_id"],
                       user_message=payload["messages"][0], model_slug=payload["model"])
    return _reply(ctx, action_result)


def _reply(ctx: ReplyContext, scenario) -> Response:
    directive = ctx.directive
    record = _state().new_stream(conversation_id=ctx.conversation_id, scenario=directive.emu,
                                 encoding=directive.encoding, subject=g.token_subject,
                                 account_id=g.account_id, client_port=_client_port())
    ctx.record = record
    ctx.state = _state()  # pictures.py keeps the conversation for GET /conversation/<id>
    body = ReplyStream(scenario(ctx), encoder_for(directive.encoding, ctx.conversation_id),
                       directive, record)
    # direct_passthrough: the server iterates (and closes) the body itself, without werkzeug's two
    # wrapping generators per chunk; the body yields bytes already.
    return Response(body, status=200, headers=SSE_HEADERS, direct_passthrough=True)


def _http_error(directive: Directive) -> Response:
    if directive.first_delay > 0:
        time.sleep(directive.first_delay)
    status, raw, headers = http_error(directive)
    return Response(raw, status=status, headers=headers)


def _client_port() -> int:
    try:
        return int(request.environ.get("REMOTE_PORT") or 0)
    except ValueError:
        return 0


def payload_problem(payload: object) -> str | None:
    """What is wrong with a conversation request, as a 422 detail; None when it is well formed."""
    if not isinstance(payload, dict):
        return "body must be a JSON object"
    if payload.get("action") != "next":
        return "action must be 'next'"
    for key in ("model", "parent_message_id"):
        if not isinstance(payload.get(key), str) or not payload[key]:
            return f"{key} must be a non-empty string"
    if not isinstance(payload.get("conversation_id"), (str, type(None))):
        return "conversation_id must be a string"
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    for index, message in enumerate(messages):
        if problem := _message_problem(message):
            return f"messages[{index}]: {problem}"
    if last_user_message(messages) is None:
        return "messages hold no user message"
    return None


def _message_problem(message: object) -> str | None:
    if not isinstance(message, dict):
        return "must be an object"
    if not isinstance(message.get("id"), str) or not message["id"]:
        return "id must be a non-empty string"
    author, content = message.get("author"), message.get("content")
    if not isinstance(author, dict) or not isinstance(author.get("role"), str):
        return "author.role must be a string"
    if not isinstance(content, dict) or not isinstance(content.get("content_type"), str):
        return "content.content_type must be a string"
    if not isinstance(content.get("parts"), list):
        return "content.parts must be a list"
    return None


def last_user_message(messages: list[dict]) -> dict | None:
    users = [m for m in messages if m["author"]["role"] == "user"]
    return users[-1] if users else None


def message_text(message: dict) -> str:
    """The text of a message: its string parts (image parts are objects) joined by newlines."""
    return "\n".join(part for part in message["content"]["parts"] if isinstance(part, str))


@backend_bp.patch("/conversation/<conversation_id>")
def update_conversation(conversation_id: str):
    if not isinstance(request.get_json(silent=True, force=True), dict):
        return jsonify(detail="body must be a JSON object"), 422
    time.sleep(_state().config["hide_delay"])  # (config) an upstream slow to hide conversations
    return jsonify(success=True)


@backend_bp.get("/gizmos/<gizmo_id>")
def gizmo(gizmo_id: str):
    if gizmo_id.startswith("g-missing"):  # a GPT that does not exist or the token cannot see
        return jsonify(detail="Gizmo not found"), 404
    display = {"name": "Emu GPT", "description": "A GPT served by the emulator",
               "profile_picture_url": None}
    return jsonify(gizmo={"id": gizmo_id, "display": display, "tags": []}, tools=[])
