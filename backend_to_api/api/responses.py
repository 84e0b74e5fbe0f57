"""POST /v1/responses, GET and DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items: the
Responses API (responses/)."""
from __future__ import annotations

import logging
import time
from contextlib import closing
from typing import Any, Iterator, List, Optional

from flask import Blueprint, Response, g, jsonify, request

from ..errors import ApiError, ClientGone, stream_failure, upstream_timeout
from ..responses.builder import ResponseBuilder
from ..responses.events import KEEP_ALIVE
from ..responses.input_items import input_items, list_page
from ..responses.items import items_to_messages
from ..responses.reader import IDLE, ResponseReader
from ..responses.request import parse_responses_request
from ..responses.store import ResponseStore
from . import client_credentials, json_body, services
from .chat import STREAM_HEADERS, guarded_stream, turn_opener
from .client_watch import client_gone_probe

log = logging.getLogger(__name__)


def responses_blueprint(prefix: str) -> Blueprint:
    blueprint = Blueprint("responses", __name__, url_prefix=prefix)
    blueprint.add_url_rule("/v1/responses", view_func=create_response, methods=["POST"])
    blueprint.add_url_rule("/v1/responses/<response_id>", view_func=get_response, methods=["GET"])
    blueprint.add_url_rule("/v1/responses/<response_id>", view_func=delete_response, methods=["DELETE"])
    blueprint.add_url_rule("/v1/responses/<response_id>/input_items", view_func=get_input_items, methods=["GET"])
    return blueprint


def create_response() -> Response:
    svc = services()
    parsed = parse_responses_request(json_body(), max_files=svc.settings.max_files_per_request)
    g.model = parsed.model
    credentials = client_credentials()
    stored = _response_store()
    caller = _caller_key()
    history: List[dict] = []
    if parsed.previous_response_id:
        history = stored.load(caller, parsed.previous_response_id, param="previous_response_id").items
    chat_request = parsed.chat_request(items_to_messages(history, "previous_response_id"))
    open_turn = turn_opener(svc, credentials, client_gone_probe(request.environ))
    first = open_turn(chat_request)
    builder = ResponseBuilder(parsed.echo, parsed.model, framed=parsed.stream)

    def save(response: dict) -> None:
        if parsed.store:
            stored.save(caller, response, history + list(parsed.input_items) + response["output"])

    reader = ResponseReader(builder, chat_request, parsed.max_output_tokens, first, open_turn, save,
                            parsed.custom_tools)
    if not parsed.stream:
        _read_whole(reader, g.timing.started + svc.settings.non_stream_deadline)
        return jsonify(builder.response)
    # Each turn is finished by the reader itself (a text.format retry makes two).
    body = guarded_stream(_sse(reader, builder, svc.settings.keep_alive_interval), g.get("timing"), lambda: None,
                          svc.metrics)
    return Response(body, status=200, mimetype="text/event-stream", headers=STREAM_HEADERS)


def get_response(response_id: str) -> Response:
    client_credentials()
    return jsonify(_response_store().load(_caller_key(), response_id).response)


def get_input_items(response_id: str) -> Response:
    client_credentials()
    stored = _response_store().load(_caller_key(), response_id)
    return jsonify(list_page(input_items(stored), request.args))


def delete_response(response_id: str) -> Response:
    client_credentials()
    _response_store().delete(_caller_key(), response_id)
    return jsonify({"id": response_id, "object": "response", "deleted": True})


def _read_whole(reader: ResponseReader, deadline: float) -> None:
    """A whole reply; ``deadline`` (time.monotonic()) bounds it, its retry included (then 504)."""
    with closing(reader.run()) as steps:  # closed at once on the 504: the upstream reply with it
        for _ in steps:
            if time.monotonic() > deadline:
                raise upstream_timeout("the whole non-stream reply")


def _sse(reader: ResponseReader, builder: ResponseBuilder, keep_alive_interval: float) -> Iterator[bytes]:
    """The SSE body: the events, and a keep-alive comment on a silent tick when one is due. Runs
    after the view returned: everything comes in as arguments."""
    last = time.monotonic()
    for piece in _events_or_failure(reader, builder):
        if piece is IDLE:
            if time.monotonic() - last < keep_alive_interval:
                continue
            piece = KEEP_ALIVE
        if piece:
            last = time.monotonic()
            yield piece


def _events_or_failure(reader: ResponseReader, builder: ResponseBuilder) -> Iterator[Any]:
    """A failure after the headers is a ``response.failed`` event carrying what was produced."""
    error: Optional[ApiError] = None
    try:
        yield from reader.run()
        return
    except ClientGone:
        raise
    except Exception as exc:  # a bug too must end the stream with response.failed
        error = stream_failure(exc, log, "rendering the response")
    yield from builder.fail(_failure_code(error), error.message)


def _failure_code(error: ApiError) -> str:
    """A Response's ``error.code`` is one of OpenAI's few words (the SDK's types hold no other);
    what exactly went wrong is in the message."""
    if error.status == 429:
        return "rate_limit_exceeded"
    if error.status == 400:
        return "invalid_prompt"  # a blocked turn (content_policy_violation)
    return "server_error"


def _response_store() -> ResponseStore:
    svc = services()
    return ResponseStore(svc.store, svc.settings.responses_ttl)


def _caller_key() -> str:
    """Whose responses these are: the key the caller presented (checked by client_credentials)."""
    return request.headers.get("Authorization", "")[7:].strip()
