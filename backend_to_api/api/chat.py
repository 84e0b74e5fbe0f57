"""POST /v1/chat/completions."""
from __future__ import annotations

import time
from typing import Callable, Iterator, Optional

from flask import Blueprint, Response, g, jsonify, request

from ..errors import ClientGone
from ..media import MediaConfig, MediaResolver
from ..render.chunks import ChunkFactory
from ..render.stream import ReplyContext, complete_reply, stream_reply
from ..render.text import ReplyRenderer
from ..render.tool_calls import for_request as tool_call_reply
from ..render.usage import count_prompt
from ..structured_reply import Turn, complete_structured, stream_structured
from ..translate.chat_request import ChatRequest, parse_chat_request
from ..translate.conversation import sent_messages
from . import client_credentials, json_body, services
from .client_watch import client_gone_probe

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def chat_blueprint(prefix: str) -> Blueprint:
    blueprint = Blueprint("chat", __name__, url_prefix=prefix)
    blueprint.add_url_rule("/v1/chat/completions", view_func=chat_completions, methods=["POST"])
    return blueprint


def chat_completions() -> Response:
    body = json_body()
    chat_request = parse_chat_request(body, max_files=services().settings.max_files_per_request)
    g.model = chat_request.model
    credentials = client_credentials()
    svc = services()
    client_gone = client_gone_probe(request.environ)
    open_turn = turn_opener(svc, credentials, client_gone)
    if chat_request.output_format is not None:
        return _structured(chat_request, open_turn, svc)
    turn = open_turn(chat_request)
    opened, context, finish = turn.opened, turn.context, turn.finish
    if not chat_request.stream:
        try:
            completion = complete_reply(opened, context, deadline=g.timing.started + svc.settings.non_stream_deadline)
        finally:
            finish()
        return jsonify(completion)
    # The generator runs after this view returns (outside the request context): it gets
    # everything it needs passed in, nothing from flask.g or current_app.
    body = guarded_stream(stream_reply(opened, context), g.get("timing"), finish, svc.metrics)
    return Response(body, status=200, mimetype="text/event-stream", headers=STREAM_HEADERS)


def _structured(chat_request: ChatRequest, open_turn: Callable[[ChatRequest], Turn], svc) -> Response:
    """response_format json_object / json_schema: the reply is read whole, checked, retried once
    (structured_reply.py)."""
    first = open_turn(chat_request)
    if not chat_request.stream:
        deadline = g.timing.started + svc.settings.non_stream_deadline
        return jsonify(complete_structured(chat_request, first, open_turn, deadline))
    # Each turn is finished by stream_structured itself (there can be two).
    body = guarded_stream(stream_structured(chat_request, first, open_turn), g.get("timing"), lambda: None,
                           svc.metrics)
    return Response(body, status=200, mimetype="text/event-stream", headers=STREAM_HEADERS)


def turn_opener(svc, credentials, client_gone: Callable[[], bool]) -> Callable[[ChatRequest], Turn]:
    """Opens a turn of this request with its context and finisher. What it needs from the Flask
    request is read now: a stream's generator, which runs after the view returned, opens structured
    output's retry with it."""
    public_url = _public_url(svc.settings)

    def open_turn(turn_request: ChatRequest) -> Turn:
        opened = svc.chat.open(turn_request, credentials, client_gone)
        try:
            context = _context(opened, turn_request, client_gone, svc, public_url)
        except BaseException:
            opened.reply.close()  # never leave an upstream call open that nobody will read
            raise
        return Turn(opened, context, finisher(svc, opened, context))

    return open_turn


def _context(opened, chat_request, client_gone: Callable[[], bool], svc, public_url: str) -> ReplyContext:
    settings = svc.settings
    encoding = opened.model.family.tokenizer
    return ReplyContext(
        factory=ChunkFactory(chat_request.model, chat_request.include_usage, sent_slug=opened.model.slug),
        renderer=ReplyRenderer(settings.bot_mode, media_resolver(opened, svc, public_url)),
        prompt_tokens=lambda: count_prompt(sent_messages(chat_request), encoding),
        encoding=encoding,
        keep_alive_interval=settings.keep_alive_interval,
        client_gone=client_gone,
        include_usage=chat_request.include_usage,
        sleep_between_chunks=settings.refresh.stream_sleep_time,
        tool_calls=tool_call_reply(chat_request.tools),
    )


def media_resolver(opened, svc=None, public_url: Optional[str] = None) -> MediaResolver:
    """Tool output of this reply is fetched with the token the upstream accepted for it."""
    svc = svc or services()
    settings = svc.settings
    config = MediaConfig(
        images_dir=settings.images_dir, files_dir=settings.files_dir,
        public_url=public_url or _public_url(settings),
        use_upstream_urls=settings.use_oaiusercontent_url,
    )
    return MediaResolver(svc.upstream, svc.upstream_urls, config, opened.access_token, opened.credentials.account_id)


def _public_url(settings) -> str:
    # Without backend_container_url, links point back at the address the client used. (Not
    # request.host_url: it also converts the host to an IRI, 3x the CPU, on every chat.)
    return settings.backend_container_url or f"{request.scheme}://{request.host}/"


def guarded_stream(body: Iterator[bytes], timing, finish: Callable[[], None], metrics) -> Iterator[bytes]:
    metrics.active_streams.inc()
    try:
        for piece in body:
            if timing is not None:
                timing.first_byte()
            yield piece
    except ClientGone:
        if timing is not None:
            timing.client_gone = True
    finally:
        metrics.active_streams.dec()
        finish()


def finisher(svc, opened, context: ReplyContext) -> Callable[[], None]:
    def finish() -> None:
        opened.reply.close()
        svc.metrics.upstream_duration.observe(time.monotonic() - opened.started)
        if context.renderer.state.failure is not None:
            svc.metrics.upstream_errors.labels("midstream").inc()
        svc.chat.hide_later(opened, context.renderer.state.conversation_id)

    return finish
