"""POST /v1/images/generations: DALL-E through a chat turn.

The prompt (after ``dalle_prompt_prefix``) goes out as one user message of a normal conversation with
the requested model; the images the turn produced are collected and answered in OpenAI's images
shape, plus the original's ``reply`` field (the whole rendered turn). NextChat sends ``dall-e-3`` with
``response_format: b64_json`` (openai-compat.md item 27).
"""
from __future__ import annotations

import base64
import json
import time
from typing import List, Mapping, Optional

from flask import Blueprint, g, jsonify, request

from ..errors import ApiError, bad_request
from ..media import FetchedImage, MediaResolver
from ..render.chunks import ChunkFactory
from ..render.stream import ReplyContext, complete_reply
from ..render.text import ReplyRenderer
from ..sse.events import CodeDelta, Event
from ..translate.chat_request import ChatMessage, ChatRequest
from . import client_credentials, json_body, services
from .chat import finisher, media_resolver
from .client_watch import client_gone_probe

SIZES = ("256x256", "512x512", "1024x1024", "1792x1024", "1024x1792")
FORMATS = ("url", "b64_json")
DEFAULT_MODEL = "dall-e-3"
# OpenAI's image model names: unless config.json makes them aliases of a chat model (as the original's
# shipped "gpt-4-mobile,dall-e-3" did), they are served by the gpt-4o family, which draws with DALL-E.
IMAGE_MODEL_NAMES = ("dall-e-3", "dall-e-2")
MAX_PROMPT = 4000


def images_blueprint(prefix: str) -> Blueprint:
    blueprint = Blueprint("images", __name__, url_prefix=prefix)
    blueprint.add_url_rule("/v1/images/generations", view_func=generate_images, methods=["POST"])
    return blueprint


class CollectingMedia:
    """Wraps the reply's MediaResolver: every image shown is also kept for the images answer."""

    def __init__(self, media: MediaResolver, keep_bytes: bool) -> None:
        self._media = media
        self._keep_bytes = keep_bytes
        self.images: List[FetchedImage] = []

    def image_url(self, file_id: str) -> Optional[str]:
        image = self._media.image(file_id, keep_bytes=self._keep_bytes)
        if image is not None:
            self.images.append(image)
        return image.url if image is not None else None

    def sandbox_url(self, *args) -> Optional[str]:
        return self._media.sandbox_url(*args)


class ImageTurnRenderer(ReplyRenderer):
    """Also remembers the JSON the model sent to dalle.text2im: its ``prompt`` is the revised prompt."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dalle_call = ""

    def render(self, event: Event) -> str:
        if isinstance(event, CodeDelta) and event.recipient.startswith("dalle"):
            self.dalle_call += event.text
        return super().render(event)

    def revised_prompt(self, fallback: str) -> str:
        try:
            call = json.loads(self.dalle_call)
        except ValueError:
            return fallback
        prompt = call.get("prompt") if isinstance(call, dict) else None
        return prompt if isinstance(prompt, str) and prompt else fallback


def generate_images():
    options = _parse(json_body())
    g.model = options["model"]
    model = _chat_model(options["model"], services().models)
    credentials = client_credentials()
    svc = services()
    chat_request = ChatRequest(model, (ChatMessage("user", (_prompt(options, svc.settings),)),),
                               stream=False, include_usage=False)
    client_gone = client_gone_probe(request.environ)
    opened = svc.chat.open(chat_request, credentials, client_gone)
    context = None
    try:
        media = CollectingMedia(media_resolver(opened), keep_bytes=options["response_format"] == "b64_json")
        renderer = ImageTurnRenderer(svc.settings.bot_mode, media)
        # Images are what this endpoint is for: render them whatever bot mode says about chat output.
        renderer.force_images()
        context = ReplyContext(ChunkFactory(options["model"]), renderer, lambda: 0, opened.model.family.tokenizer,
                               svc.settings.keep_alive_interval, client_gone)
        completion = complete_reply(opened, context, deadline=g.timing.started + svc.settings.non_stream_deadline)
    finally:
        if context is not None:
            finisher(svc, opened, context)()
        else:
            opened.reply.close()
    reply = completion["choices"][0]["message"]["content"]
    return jsonify(_answer(media.images, options, renderer.revised_prompt(options["prompt"]), reply))


def _chat_model(model: str, models) -> str:
    if model in IMAGE_MODEL_NAMES and model not in models.names():
        return models.family_names("gpt-4o")[0] if models.family_names("gpt-4o") else model
    return model


def _answer(images: List[FetchedImage], options: Mapping, revised_prompt: str, reply: str) -> dict:
    if not images:
        raise ApiError(400, f"No image was generated. The model answered: {reply[:1000]}",
                       "invalid_request_error", code="image_generation_failed", headers={"x-should-retry": "false"})
    images = images[: options["n"]]
    if options["response_format"] == "b64_json":
        data = [{"b64_json": base64.b64encode(i.data).decode("ascii"), "revised_prompt": revised_prompt} for i in images]
    else:
        data = [{"url": i.url, "revised_prompt": revised_prompt} for i in images]
    return {"created": int(time.time()), "data": data, "reply": reply}


def _prompt(options: Mapping, settings) -> str:
    size = f"\nsize: {options['size']}" if options["size"] else ""
    return f"{settings.dalle_prompt_prefix}{options['prompt']}{size}"


def _parse(body) -> dict:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad_request("'prompt' must be a non-empty string.", param="prompt")
    if len(prompt) > MAX_PROMPT:
        raise bad_request(f"'prompt' is longer than {MAX_PROMPT} characters.", param="prompt")
    model = body.get("model") or DEFAULT_MODEL
    if not isinstance(model, str):
        raise bad_request("'model' must be a string.", param="model")
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
        raise bad_request("'n' must be an integer from 1 to 10.", param="n")
    size = body.get("size")
    if size is not None and size not in SIZES:
        raise bad_request(f"'size' must be one of {', '.join(SIZES)}.", param="size")
    response_format = body.get("response_format") or "url"
    if response_format not in FORMATS:
        raise bad_request("'response_format' must be url or b64_json.", param="response_format")
    return {"prompt": prompt.strip(), "model": model, "n": n, "size": size, "response_format": response_format}
