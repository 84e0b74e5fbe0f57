"""POST /v1/audio/speech, /v1/audio/transcriptions and /v1/audio/translations (voice_service.py).

Speech audio is passed on as the upstream sends it, chunk by chunk (chunked, no Content-Length): a
body the upstream cuts short stays visibly incomplete (no last chunk) rather than ending "cleanly".
Translations are the same upstream call as transcriptions: the text comes back in the language
that was spoken (the upstream has no translating call).
"""
from __future__ import annotations

import logging
from typing import Iterator

from flask import Blueprint, Response, g, jsonify, request

from ..errors import ApiError
from ..translate.audio_request import TranscriptionRequest, parse_speech_request, parse_transcription_request
from ..upstream.voice import SpeechAudio
from . import client_credentials, json_body, services
from .client_watch import client_gone_probe

log = logging.getLogger(__name__)


def audio_blueprint(prefix: str) -> Blueprint:
    blueprint = Blueprint("audio", __name__, url_prefix=prefix)
    blueprint.add_url_rule("/v1/audio/speech", view_func=create_speech, methods=["POST"])
    blueprint.add_url_rule("/v1/audio/transcriptions", view_func=create_transcription, methods=["POST"])
    blueprint.add_url_rule("/v1/audio/translations", view_func=create_translation, methods=["POST"])
    return blueprint


def create_speech() -> Response:
    speech = parse_speech_request(json_body())
    g.model = speech.model
    credentials = client_credentials()
    audio = services().voice.speak(speech, credentials, client_gone_probe(request.environ))
    # Runs after the view returns: everything it needs is passed in.
    return Response(_audio_body(audio), status=200, content_type=audio.content_type,
                    headers={"Cache-Control": "no-cache"})


def _audio_body(audio: SpeechAudio) -> Iterator[bytes]:
    try:
        yield from audio.chunks()
    except ApiError as exc:
        # Headers are gone: raising makes the server drop the connection without the last chunk.
        log.warning("speech audio cut short: %s", exc.message)
        raise
    finally:
        audio.close()


def create_transcription() -> Response:
    return _transcript("transcribe")


def create_translation() -> Response:
    return _transcript("translate")


def _transcript(task: str) -> Response:
    svc = services()
    parsed = parse_transcription_request(request.form, request.files, svc.settings.input_file_max_bytes, task)
    g.model = parsed.model
    text = svc.voice.transcribe(parsed, client_credentials())
    return _transcript_answer(parsed, text)


def _transcript_answer(parsed: TranscriptionRequest, text: str) -> Response:
    if parsed.response_format == "text":
        return Response(text, status=200, mimetype="text/plain")
    if parsed.response_format == "verbose_json":
        # Minimal: the upstream gives no duration, segments nor detected language.
        return jsonify({"task": parsed.task, "language": parsed.upload.language or "", "duration": 0.0,
                        "text": text})
    return jsonify({"text": text})
