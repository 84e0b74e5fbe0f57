"""Voice (spec backend-api-2026.md section 5): the speech conversation, `GET /backend-api/synthesize`,
`POST /backend-api/transcribe`, and the download link synthesize may hand out instead of bytes.

A speech conversation is a conversation POST whose messages are all assistant messages. The reply
(v1 deltas, as today's upstream sends them) repeats the posted message (growing to finished, same
id), then a short message of the model's own (so a client must pick the one holding its text),
then `[DONE]`. An `emu-voice:<mode> ` prefix of the text picks a variant:
- `model_first`: the posted message gets a new id and the model's message comes before it;
- `cumulative`: the classic encoding instead of v1 deltas;
- `busy`: the conversation POST is a 429 (`clears_in` 7);
- `odd_id`: the conversation id is `../../me`;
- `hang`: pings for 20 s before the messages (a stream in /_emulator/streams, scenario `speech_hang`);
- `download_url`: synthesize answers JSON with a link to the audio (`/_emulator/speech`);
- `metadata_url`: the link points at the cloud metadata address (a proxy must refuse it);
- `synth_error`: synthesize answers 500.
Otherwise synthesize answers the audio bytes. Transcribe answers `{"text"}`, plain text for a file
starting `EMU-TEXT`, a 500 for one starting `EMU-ERROR`. `speech_audio` and `transcript` are what
the tests compare against.
"""
from __future__ import annotations

import copy
import hashlib
import threading
import time
import uuid
from typing import Iterator

from flask import Blueprint, Response, current_app, g, jsonify, request

from .encodings import encoder_for
from .steps import MessageUpdate, StreamComplete
from .wire import render_frame, to_json

voice_bp = Blueprint("voice", __name__)

VOICES = ("cove", "fathom", "vale", "ember", "breeze", "orbit", "maple", "glimmer", "juniper")
AUDIO_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac"}
_MAGIC = {"mp3": b"ID3\x04\x00", "opus": b"OggS\x00", "aac": b"\xff\xf1\x50\x80"}
MODE_PREFIX = "emu-voice:"
MODEL_REPLY = "Noted."  # the model's own message after the posted one
HANG_SECONDS = 20
METADATA_URL = "http://169.254.169.254/latest/meta-data/audio.mp3"
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


class SpeechMessages:
    """(conversation id, message id) -> text of every posted speech message (one per emulator)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._texts: dict[tuple[str, str], str] = {}

    def add(self, conversation_id: str, message_id: str, text: str) -> None:
        with self._lock:
            self._texts[(conversation_id, message_id)] = text

    def text(self, conversation_id: str, message_id: str) -> str | None:
        with self._lock:
            return self._texts.get((conversation_id, message_id))


def speech_audio(text: str, voice: str, audio_format: str) -> bytes:
    """The emulator's 'audio' for a text: the format's magic bytes, then a deterministic body large
    enough (>= 48 KiB) to take several reads."""
    seed = hashlib.sha256(f"{voice}\0{audio_format}\0{text}".encode()).digest()
    repeats = (48 * 1024 + 64 * len(text)) // len(seed)
    return _MAGIC[audio_format] + seed * repeats


def transcript(data: bytes, language: str) -> str:
    return f"Transcript of {len(data)} bytes ({language or 'auto'}): {hashlib.sha256(data).hexdigest()[:16]}"


def _mode(text: str) -> str:
    return text[len(MODE_PREFIX):].split(" ", 1)[0] if text.startswith(MODE_PREFIX) else ""


def _speeches() -> SpeechMessages:
    return current_app.extensions["emulator_speech"]


def is_speech_payload(payload: object) -> bool:
    messages = payload.get("messages") if isinstance(payload, dict) else None
    return (isinstance(messages, list) and bool(messages) and
            all(isinstance(m, dict) and isinstance(m.get("author"), dict) and m["author"].get("role") == "assistant"
                for m in messages))


def speech_reply(payload: dict) -> Response | tuple[Response, int]:
    """The conversation POST of a speech request (backend.conversation hands it here)."""
    posted = payload["messages"][-1]
    parts = posted.get("content", {}).get("parts") if isinstance(posted.get("content"), dict) else None
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
        return jsonify(detail="a speech message needs text parts"), 422
    if payload.get("action") != "next" or not all(
            isinstance(value, str) and value for value in (posted.get("id"), payload.get("model"),
                                                           payload.get("parent_message_id"))):
        return jsonify(detail="action must be 'next'; message id, model, parent_message_id non-empty strings"), 422
    text = "".join(parts)
    # odd_id: a conversation id that is no id (a client must not put it in a path)
    conversation_id = "../../me" if _mode(text) == "odd_id" else payload.get("conversation_id") or str(uuid.uuid4())
    if _mode(text) == "busy":
        return Response('{"detail": {"message": "Too many requests", "clears_in": 7}}', status=429,
                        headers={"Content-Type": "application/json"})
    # model_first: the upstream renames the posted message and sends the model's own one first.
    model_first = _mode(text) == "model_first"
    echo_id = str(uuid.uuid4()) if model_first else posted["id"]
    _speeches().add(conversation_id, echo_id, text)
    documents = [_message_document(conversation_id, echo_id, text, payload["model"]),
                 _message_document(conversation_id, str(uuid.uuid4()), MODEL_REPLY, payload["model"])]
    encoder = encoder_for("cumulative" if _mode(text) == "cumulative" else "v1", conversation_id)
    frames = list(encoder.preamble())
    for document in documents[::-1] if model_first else documents:
        frames += _grown(encoder, document)
    frames += encoder.encode(StreamComplete()) + [("data: [DONE]",)]
    if _mode(text) == "hang":
        record = current_app.extensions["emulator"].new_stream(
            conversation_id=conversation_id, scenario="speech_hang", encoding="v1", subject=g.token_subject,
            account_id=g.account_id)
        return Response(_hanging(frames, record), status=200, headers=_SSE_HEADERS)
    return Response(b"".join(render_frame(frame, crlf=False) for frame in frames), status=200, headers=_SSE_HEADERS)


def _hanging(frames: list, record) -> Iterator[bytes]:
    """`hang`: the v1 preamble and the posted message's first event (its conversation id), then
    `event: ping` every 0.2 s for HANG_SECONDS before the rest;
    ``record`` (a stream of /_emulator/streams) says whether the caller hung up."""
    outcome = "client_closed"
    try:
        yield b"".join(render_frame(frame, crlf=False) for frame in frames[:2])  # the posted message starts
        ends = time.monotonic() + HANG_SECONDS
        while time.monotonic() < ends:
            time.sleep(0.2)
            yield render_frame(("event: ping", "data: {}"), crlf=False)
        yield b"".join(render_frame(frame, crlf=False) for frame in frames[2:])
        outcome = "completed"
    finally:
        record.end(outcome)


def _grown(encoder, document: dict) -> list:
    """The frames of one message: first empty and in progress, then whole and finished."""
    start = copy.deepcopy(document)
    start["message"].update(status="in_progress", end_turn=None)
    start["message"]["content"]["parts"] = [""]
    return encoder.encode(MessageUpdate(to_json(start))) + encoder.encode(MessageUpdate(to_json(document)))


def _message_document(conversation_id: str, message_id: str, text: str, model: str) -> dict:
    message = {"id": message_id, "author": {"role": "assistant", "name": None, "metadata": {}},
               "create_time": time.time(), "update_time": time.time(),
               "content": {"content_type": "text", "parts": [text]},
               "status": "finished_successfully", "end_turn": True, "weight": 1.0,
               "metadata": {"model_slug": model, "finish_details": {"type": "stop"}}, "recipient": "all",
               "channel": None}
    return {"message": message, "conversation_id": conversation_id, "error": None}


@voice_bp.get("/backend-api/synthesize")
def synthesize():
    args = request.args
    missing = [name for name in ("message_id", "conversation_id", "voice", "format") if not args.get(name)]
    if missing:
        return jsonify(detail=f"missing {', '.join(missing)}"), 422
    if args["voice"] not in VOICES or args["format"] not in AUDIO_TYPES:
        return jsonify(detail="unknown voice or format"), 422
    text = _speeches().text(args["conversation_id"], args["message_id"])
    if text is None:
        return jsonify(detail="Message not found"), 404
    mode = _mode(text)
    if mode == "synth_error":
        return jsonify(detail="Emulated synthesis failure"), 500
    if mode in ("download_url", "metadata_url"):
        query = f"message_id={args['message_id']}&conversation_id={args['conversation_id']}" \
                f"&voice={args['voice']}&format={args['format']}"
        url = METADATA_URL if mode == "metadata_url" else f"{request.host_url}_emulator/speech?{query}"
        return jsonify(download_url=url)
    return _audio(text, args["voice"], args["format"])


@voice_bp.get("/_emulator/speech")
def speech_download():
    """The download link's target: no auth (a pre-signed link), never recorded."""
    args = request.args
    text = _speeches().text(args.get("conversation_id", ""), args.get("message_id", ""))
    if text is None or args.get("format") not in AUDIO_TYPES:
        return jsonify(detail="Not Found"), 404
    return _audio(text, args.get("voice", ""), args["format"])


def _audio(text: str, voice: str, audio_format: str) -> Response:
    return Response(speech_audio(text, voice, audio_format), status=200,
                    headers={"Content-Type": AUDIO_TYPES[audio_format]})


@voice_bp.post("/backend-api/transcribe")
def transcribe():
    upload = request.files.get("file")
    if upload is None:
        return jsonify(detail="file is required"), 400
    data = upload.read()
    if data.startswith(b"EMU-ERROR"):
        return jsonify(detail="Emulated transcription failure"), 500
    text = transcript(data, request.form.get("language", ""))
    if data.startswith(b"EMU-TEXT"):  # some deployments answer plain text
        return Response(text, status=200, headers={"Content-Type": "text/plain; charset=utf-8"})
    return jsonify(text=text)
