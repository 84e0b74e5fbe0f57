"""POST /v1/chat/completions."""
from __future__ import annotations

import time
from typing import Callable, Iterator

from flask import Blueprint, Response, g, jsonify, request

from ..errors import ClientGone
from ..media import MediaConfig, MediaResolver
from ..render.chunks import ChunkFactory
from ..render.stream import ReplyContext, complete_reply, stream_reply
from ..render.text import ReplyRenderer
from ..render.usage import count_prompt
from ..translate.chat_request import parse_chat_request
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
    opened = svc.chat.open(chat_request, credentials, client_gone)
    try:
        context = _context(opened, chat_request, client_gone)
    except BaseException:
        opened.reply.close()  # never leave an upstream call open that nobody will read
        raise
    finish = finisher(svc, opened, context)
    if not chat_request.stream:
        try:
            completion = complete_reply(opened, context, deadline=g.timing.started + svc.settings.non_stream_deadline)
        finally:
            finish()
        return jsonify(completion)
    # The generator runs after this view returns (outside the request context): it gets
    # everything it needs passed in, nothing from flask.g or current_app.
    body = _guarded_stream(opened, context, g.get("timing"), finish, svc.metrics)
    return Response(body, status=200, mimetype="text/event-stream", headers=STREAM_HEADERS)


def _context(opened, chat_request, client_gone: Callable[[], bool]) -> ReplyContext:
    settings = services().settings
    encoding = opened.model.family.tokenizer
    return ReplyContext(
        factory=ChunkFactory(chat_request.model, chat_request.include_usage, sent_slug=opened.model.slug),
        renderer=ReplyRenderer(settings.bot_mode, media_resolver(opened)),
        prompt_tokens=lambda: count_prompt(chat_request.messages, encoding),
        encoding=encoding,
        keep_alive_interval=settings.keep_alive_interval,
        client_gone=client_gone,
        include_usage=chat_request.include_usage,
        sleep_between_chunks=settings.refresh.stream_sleep_time,
    )


def media_resolver(opened) -> MediaResolver:
    """Tool output of this reply is fetched with the token the upstream accepted for it."""
    settings = services().settings
    config = MediaConfig(
        images_dir=settings.images_dir, files_dir=settings.files_dir,
        # Without backend_container_url, links point back at the address the client used. (Not
        # request.host_url: it also converts the host to an IRI, 3x the CPU, on every chat.)
        public_url=settings.backend_container_url or f"{request.scheme}://{request.host}/",
        use_upstream_urls=settings.use_oaiusercontent_url,
    )
    return MediaResolver(services().upstream, services().upstream_urls, config, opened.access_token,
                         opened.credentials.account_id)


def _guarded_stream(opened, context: ReplyContext, timing, finish: Callable[[], None], metrics) -> Iterator[bytes]:
    metrics.active_streams.inc()
    try:
        for piece in stream_reply(opened, context):
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
