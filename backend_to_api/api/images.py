"""POST /v1/images/generations and /v1/images/edits.

OpenAI's image model names (``gpt-image-1``, ``gpt-image``, ``dall-e-3``, ``dall-e-2``) run today's
image flow: one ``picture_v2`` turn per requested image (image_jobs.py, spec backend-api-2026.md
3.7 and 5); edits upload their sources first. A chat model named instead (``gpt-4o``, or an image
name config.json made a chat model's alias) keeps the older turn: the prompt (after
``dalle_prompt_prefix``) as a chat message, whose DALL-E images are collected. The answer is
OpenAI's images shape plus the original's ``reply`` field (the turn's text and image links).
NextChat sends ``dall-e-3`` with ``response_format: b64_json`` (openai-compat.md item 27).
"""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Tuple

from flask import Blueprint, g, jsonify, request
from werkzeug.datastructures import FileStorage

from ..auth.tokens import Credentials
from ..chat_service import CustomTurn
from ..errors import ApiError, bad_request
from ..image_jobs import ImageSources, download, picture_turn, read_turn, turn_images
from ..image_results import ConversationPoller
from ..media import FetchedImage
from ..translate.chat_request import ChatMessage, ChatRequest
from ..translate.fetch import Fetched
from ..translate.filetypes import classify
from . import client_credentials, json_body, services
from .chat import media_resolver
from .client_watch import client_gone_probe

SIZES = ("256x256", "512x512", "1024x1024", "1792x1024", "1024x1792", "1536x1024", "1024x1536", "auto")
FORMATS = ("url", "b64_json")
DEFAULT_MODEL = "dall-e-3"
# Served by today's image model unless config.json makes the name a chat model's alias.
IMAGE_MODEL_NAMES = ("gpt-image-1", "gpt-image", "dall-e-3", "dall-e-2")
B64_MODEL_NAMES = ("gpt-image-1", "gpt-image")
MAX_PROMPT = 4000


def images_blueprint(prefix: str) -> Blueprint:
    blueprint = Blueprint("images", __name__, url_prefix=prefix)
    blueprint.add_url_rule("/v1/images/generations", view_func=generate_images, methods=["POST"])
    blueprint.add_url_rule("/v1/images/edits", view_func=edit_images, methods=["POST"])
    return blueprint


def generate_images():
    return jsonify(_run(_options(json_body()), None))


def edit_images():
    if not request.mimetype.startswith("multipart/form-data"):
        raise bad_request("/v1/images/edits takes multipart/form-data (image, prompt, optional mask).")
    options = _options(request.form.to_dict())
    return jsonify(_run(options, _sources()))


def _run(options: Mapping, sources: Optional[ImageSources]) -> dict:
    g.model = options["model"]
    svc = services()
    picture = sources is not None or (options["model"] in IMAGE_MODEL_NAMES
                                      and options["model"] not in svc.models.names())
    prompt = _prompt(options, svc.settings, picture)
    job = _ImageJob(options, client_credentials(), client_gone_probe(request.environ),
                    g.timing.started + svc.settings.non_stream_deadline,
                    ChatRequest(options["model"], (ChatMessage("user", (prompt,)),), stream=False, include_usage=False),
                    picture_turn(options["model"], prompt, sources) if picture else None)
    images: List[FetchedImage] = []
    revised: List[str] = []
    texts: List[str] = []
    for _ in range(options["n"]):  # one turn per image, as the web app does; a turn may bring several
        drawn, drawn_prompts, text = job.run_turn(svc)
        images += drawn
        revised += drawn_prompts
        texts.append(text)
        if len(images) >= options["n"]:
            break
    return _answer(images[:options["n"]], revised, options, texts)


@dataclass(frozen=True)
class _ImageJob:
    """One images request: what each of its turns needs."""

    options: Mapping
    credentials: Optional[Credentials]
    client_gone: Callable[[], bool]
    deadline: float  # time.monotonic(): the whole request, polling included
    chat_request: ChatRequest
    turn: Optional[CustomTurn]  # None: the older DALL-E-by-chat turn of the named chat model

    def run_turn(self, svc) -> Tuple[List[FetchedImage], List[str], str]:
        """One upstream turn: its images (downloaded), their revised prompts, its text."""
        opened = svc.chat.open(self.chat_request, self.credentials, self.client_gone, self.turn)
        conversation_id = None
        try:
            record = read_turn(opened, self.client_gone, self.deadline)
            conversation_id = record.conversation_id
            poller = ConversationPoller(svc.upstream, opened.access_token, opened.credentials.account_id,
                                        svc.settings.image_poll_interval, svc.settings.image_poll_timeout,
                                        self.client_gone)
            found = turn_images(record, poller, self.deadline, picture=self.turn is not None)
            images = download(found, media_resolver(opened), conversation_id,
                              keep_bytes=self.options["response_format"] == "b64_json")
            revised = [image.prompt or record.dalle_prompt() or self.options["prompt"] for image in found]
            return images, revised, "".join(record.text)
        finally:
            opened.reply.close()
            svc.metrics.upstream_duration.observe(time.monotonic() - opened.started)
            svc.chat.hide_later(opened, conversation_id)


def _answer(images: List[FetchedImage], revised: List[str], options: Mapping, texts: List[str]) -> dict:
    if options["response_format"] == "b64_json":
        data = [{"b64_json": base64.b64encode(i.data).decode("ascii"), "revised_prompt": p}
                for i, p in zip(images, revised)]
    else:
        data = [{"url": i.url, "revised_prompt": p} for i, p in zip(images, revised)]
    links = "".join(f"\n![image]({image.url})\n" for image in images)
    return {"created": int(time.time()), "data": data, "reply": "\n".join(t for t in texts if t) + links}


def _prompt(options: Mapping, settings, picture: bool) -> str:
    # picture_v2 is the drawing tool itself: the older "please draw" prefix would only be noise.
    prefix = "" if picture else settings.dalle_prompt_prefix
    size = f"\nsize: {options['size']}" if options["size"] and options["size"] != "auto" else ""
    return f"{prefix}{options['prompt']}{size}"


def _options(body) -> dict:
    """Generations (JSON) and edits (form fields, all strings) share their fields."""
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
    if isinstance(n, str) and n.strip().isdigit():
        n = int(n)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
        raise bad_request("'n' must be an integer from 1 to 10.", param="n")
    size = body.get("size") or None
    if size is not None and size not in SIZES:
        raise bad_request(f"'size' must be one of {', '.join(SIZES)}.", param="size")
    # OpenAI answers its gpt-image models in b64_json only, and their callers read that; DALL-E's default is url.
    response_format = body.get("response_format") or ("b64_json" if model in B64_MODEL_NAMES else "url")
    if response_format not in FORMATS:
        raise bad_request("'response_format' must be url or b64_json.", param="response_format")
    return {"prompt": prompt.strip(), "model": model, "n": n, "size": size, "response_format": response_format}


def _sources() -> ImageSources:
    """The uploaded images (``image`` or ``image[]``) and mask, each checked to be an image."""
    settings = services().settings
    uploads = request.files.getlist("image") + request.files.getlist("image[]")
    if not uploads:
        raise bad_request("Provide at least one image to edit ('image' or 'image[]').", param="image")
    if len(uploads) > settings.max_files_per_request:
        raise bad_request(f"At most {settings.max_files_per_request} images can be edited at once.",
                          param="image", code="too_many_files")
    images = [_image_file(upload, "image", settings.input_file_max_bytes) for upload in uploads]
    mask = request.files.get("mask")
    return ImageSources(images, _image_file(mask, "mask", settings.input_file_max_bytes) if mask else None)


def _image_file(upload: FileStorage, param: str, max_bytes: int) -> Fetched:
    data = upload.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(400, f"'{param}' is larger than {max_bytes} bytes.", code="file_too_large", param=param)
    if not data:
        raise bad_request(f"'{param}' is empty.", param=param, code="invalid_image")
    if not classify(data, upload.mimetype or "").is_image:
        raise bad_request(f"'{param}' is not a PNG, JPEG, GIF or WebP image.", param=param, code="invalid_image")
    return Fetched(data, upload.mimetype or "", upload.filename or None)
