"""OpenAI's /v1/audio requests, validated (every bad input a 400 naming its parameter).

Speech: OpenAI's voices are mapped to ChatGPT's own (which are also accepted as they are); the
upstream makes mp3, opus and aac only, so flac, wav and pcm are answered as aac (the Content-Type
says so). ``speed`` and ``instructions`` are checked and ignored: synthesize takes neither.
Transcriptions: ``response_format`` json, text or a minimal verbose_json (no timestamps are known,
so srt and vtt are refused); ``prompt`` and ``temperature`` are checked and ignored.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..errors import ApiError, bad_request
from ..media import safe_file_name
from ..upstream.voice import AudioUpload

VOICES = {"alloy": "cove", "ash": "fathom", "coral": "vale", "echo": "ember", "fable": "breeze",
          "onyx": "orbit", "nova": "maple", "sage": "glimmer", "shimmer": "juniper"}
DEFAULT_VOICE = "cove"
SPEECH_FORMATS = {"mp3": "mp3", "opus": "opus", "aac": "aac", "flac": "aac", "wav": "aac", "pcm": "aac"}
MAX_SPEECH_INPUT = 4096  # OpenAI's limit, in characters
TRANSCRIPT_FORMATS = ("json", "text", "verbose_json")
UNSUPPORTED_TRANSCRIPT_FORMATS = ("srt", "vtt")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")


@dataclass(frozen=True)
class SpeechRequest:
    model: str
    text: str
    voice: str  # the upstream's name
    audio_format: str  # mp3 | opus | aac


@dataclass(frozen=True)
class TranscriptionRequest:
    model: str
    upload: AudioUpload
    response_format: str
    task: str  # transcribe | translate (the same upstream call)


def parse_speech_request(body: Any) -> SpeechRequest:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    model = _model(body.get("model"))
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("'input' must be a non-empty string.", param="input")
    if len(text) > MAX_SPEECH_INPUT:
        raise bad_request(f"'input' is longer than {MAX_SPEECH_INPUT} characters.", param="input",
                          code="string_above_max_length")
    voice = body.get("voice", "alloy")
    voice = voice if isinstance(voice, str) else ""  # a list or object must not reach a dict lookup
    upstream_voice = VOICES.get(voice) or (voice if voice in VOICES.values() else None)
    if upstream_voice is None:
        raise bad_request(f"'voice' must be one of {', '.join(VOICES)} (or ChatGPT's own: "
                          f"{', '.join(VOICES.values())}).", param="voice")
    audio_format = body.get("response_format") or "mp3"
    if not isinstance(audio_format, str) or audio_format not in SPEECH_FORMATS:
        raise bad_request(f"'response_format' must be one of {', '.join(SPEECH_FORMATS)}.", param="response_format")
    _number(body.get("speed"), "speed", 0.25, 4.0)
    if not isinstance(body.get("instructions", ""), str):
        raise bad_request("'instructions' must be a string.", param="instructions")
    return SpeechRequest(model, text, upstream_voice, SPEECH_FORMATS[audio_format])


def parse_transcription_request(form: Mapping[str, str], files: Mapping[str, Any], max_bytes: int,
                                task: str) -> TranscriptionRequest:
    """``form``/``files``: the multipart fields (werkzeug's); the file is read up to ``max_bytes``."""
    upload = files.get("file")
    if upload is None:
        raise bad_request("'file' is required: send the audio as a multipart file field named 'file'.",
                          param="file")
    model = _model(form.get("model"))
    response_format = form.get("response_format") or "json"
    if response_format in UNSUPPORTED_TRANSCRIPT_FORMATS:
        raise bad_request(f"'response_format' {response_format} is not supported here (the upstream gives no "
                          f"timestamps); use json, text or verbose_json.", param="response_format")
    if response_format not in TRANSCRIPT_FORMATS:
        raise bad_request(f"'response_format' must be one of {', '.join(TRANSCRIPT_FORMATS)}.",
                          param="response_format")
    language = form.get("language") or None
    if language is not None and not _LANGUAGE.match(language):
        raise bad_request("'language' must be a language code such as 'en' or 'zh'.", param="language")
    _number(form.get("temperature"), "temperature", 0.0, 1.0)
    data = upload.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(413, f"'file' is larger than {max_bytes} bytes.", code="file_too_large", param="file")
    if not data:
        raise bad_request("'file' is empty.", param="file")
    audio = AudioUpload(data, safe_file_name(upload.filename or "audio"),
                        upload.mimetype or "application/octet-stream", language)
    return TranscriptionRequest(model, audio, response_format, task)


def _model(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request("'model' is required (e.g. tts-1 or whisper-1); its value is not used.", param="model")
    return value.strip()


def _number(value: Any, name: str, low: float, high: float) -> Optional[float]:
    """An optional number within [low, high]: form fields come as strings, JSON ones as numbers."""
    if value is None or value == "":
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer of 400 digits
        number = math.nan
    if not low <= number <= high:
        raise bad_request(f"'{name}' must be a number from {low} to {high}.", param=name)
    return number
