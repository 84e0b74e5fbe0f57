"""The backend-api calls behind /v1/audio (spec backend-api-2026.md section 5).

Speech: the text is posted as a conversation whose only message is an *assistant* message (the
web app reads out its own messages, so the text has to become one), then
``GET /backend-api/synthesize?message_id=&conversation_id=&voice=&format=`` answers the audio, or
JSON whose ``download_url`` holds it (opened through the URL guard, like every link the upstream
hands back). Transcription: ``POST /backend-api/transcribe``, multipart ``file`` (+ ``language``),
answered by plain text or ``{"text"}``.
"""
from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import requests
import urllib3

from ..errors import UpstreamError
from ..jsonbytes import string_field
from ..translate.conversation import TIMEZONE_OFFSET_MIN
from .client import USER_AGENT, UpstreamClient
from .errors import map_upstream_status, short_error_body, upstream_message, wrap_transport_errors
from .guarded_fetch import FetchFailed, GuardedFetcher, RefusedAddress

# What the upstream makes (anything else is asked as aac) and the type each is served with.
CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac"}
AUDIO_CHUNK = 64 * 1024
MAX_JSON_ANSWER = 1024 * 1024  # a download link or a transcript: never more than this is read
DOWNLOAD_REDIRECTS = 3


@dataclass(frozen=True)
class SpeechTarget:
    conversation_id: str
    message_id: str


@dataclass(frozen=True)
class AudioUpload:
    data: bytes
    file_name: str
    mime: str
    language: Optional[str]


class SpeechAudio:
    """An audio body being read from the upstream: ``chunks()`` once, then ``close()`` (which also
    runs what was added with ``on_close``, e.g. hiding the conversation)."""

    def __init__(self, content_type: str, chunks: Iterator[bytes], close: Callable[[], None]) -> None:
        self.content_type = content_type
        self._chunks = chunks
        self._closers: List[Callable[[], None]] = [close]

    def chunks(self) -> Iterator[bytes]:
        with wrap_transport_errors("reading the speech audio"):
            yield from self._chunks

    def on_close(self, action: Callable[[], None]) -> None:
        self._closers.append(action)

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for action in closers:
            action()


def speech_payload(text: str, model_slug: str) -> Tuple[dict, str]:
    """The conversation that holds ``text`` as an assistant message, and that message's id.
    History stays on: synthesize reads the stored message."""
    message_id = str(uuid.uuid4())
    message = {"id": message_id, "author": {"role": "assistant"},
               "content": {"content_type": "text", "parts": [text]}, "metadata": {}}
    payload = {"action": "next", "messages": [message], "parent_message_id": str(uuid.uuid4()),
               "model": model_slug, "timezone_offset_min": TIMEZONE_OFFSET_MIN,
               "history_and_training_disabled": False, "conversation_mode": {"kind": "primary_assistant"},
               "force_paragen": False, "force_rate_limit": False}
    return payload, message_id


class VoiceCalls:
    def __init__(self, client: UpstreamClient, upstream_urls: GuardedFetcher, read_timeout: float) -> None:
        self.client = client
        self.upstream_urls = upstream_urls  # the download_url is the upstream's word: checked like any URL
        self.read_timeout = read_timeout

    def synthesize(self, target: SpeechTarget, voice: str, audio_format: str, access_token: str,
                   account_id: Optional[str]) -> SpeechAudio:
        """The open audio of ``target`` (raises UpstreamError: a 401 keeps its upstream_status)."""
        params = {"message_id": target.message_id, "conversation_id": target.conversation_id,
                  "voice": voice, "format": audio_format}
        with wrap_transport_errors("synthesize"):
            response = self.client.session.get(f"{self.client.root}/backend-api/synthesize", params=params,
                                               headers=self.client.headers(access_token, account_id),
                                               timeout=(self.client.timeout[0], self.read_timeout), stream=True)
        if response.status_code != 200:
            raise map_upstream_status(response.status_code, short_error_body(response), response.headers)
        kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            return self._download(_download_url(response), audio_format)
        if kind.startswith("text/"):  # e.g. a login page with status 200
            message = upstream_message(short_error_body(response), kind)
            raise UpstreamError(502, f"The upstream answered {kind} instead of audio: {message}", 200,
                                code="upstream_not_audio")
        return SpeechAudio(CONTENT_TYPES[audio_format], response.iter_content(AUDIO_CHUNK), response.close)

    def _download(self, url: str, audio_format: str) -> SpeechAudio:
        # The link is pre-signed: our Authorization header must not travel with it.
        timeout = urllib3.Timeout(connect=self.client.timeout[0], read=self.read_timeout)
        opened = contextlib.ExitStack()
        try:
            with wrap_transport_errors("speech download"):
                response, _ = opened.enter_context(
                    self.upstream_urls.get_following(url, {"User-Agent": USER_AGENT}, timeout, DOWNLOAD_REDIRECTS))
        except (RefusedAddress, FetchFailed, ValueError) as exc:
            raise UpstreamError(502, f"The upstream's audio link was not fetched: {exc}",
                                code="speech_download_failed") from None
        if response.status != 200:
            opened.close()
            raise UpstreamError(502, f"The upstream's audio link answered HTTP {response.status}.",
                                response.status, code="speech_download_failed")
        return SpeechAudio(CONTENT_TYPES[audio_format], response.stream(AUDIO_CHUNK), opened.close)

    def transcribe(self, upload: AudioUpload, access_token: str, account_id: Optional[str]) -> str:
        """The text the upstream heard (raises UpstreamError: a 401 keeps its upstream_status)."""
        form: Dict[str, str] = {"language": upload.language} if upload.language else {}
        response = self.client.post(f"{self.client.root}/backend-api/transcribe", "transcribe",
                                    files={"file": (upload.file_name, upload.data, upload.mime)}, data=form,
                                    headers=self.client.headers(access_token, account_id),
                                    timeout=(self.client.timeout[0], self.read_timeout), stream=True)
        if response.status_code != 200:
            raise map_upstream_status(response.status_code, short_error_body(response), response.headers)
        kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        body = _small_body(response)
        if kind == "application/json":
            text = string_field(body, "text")
            if text is None:
                raise UpstreamError(502, "The upstream's transcription has no text.", 200, code="upstream_error")
            return text
        if kind == "text/html":
            raise UpstreamError(502, f"The upstream answered {kind} instead of a transcription: "
                                     f"{upstream_message(body, kind)}", 200, code="upstream_error")
        return body.strip()


def _download_url(response: requests.Response) -> str:
    url = string_field(_small_body(response), "download_url")
    if url is None or not url.startswith(("http://", "https://")):
        raise UpstreamError(502, "The upstream answered JSON without an audio download_url.", 200,
                            code="speech_download_failed")
    return url


def _small_body(response: requests.Response) -> str:
    """The whole body of a small answer; more than MAX_JSON_ANSWER is a 502 (then closed)."""
    try:
        with wrap_transport_errors("reading the answer"):
            data = response.raw.read(MAX_JSON_ANSWER + 1, decode_content=True)
    finally:
        response.close()
    if len(data) > MAX_JSON_ANSWER:
        raise UpstreamError(502, f"The upstream's answer is larger than {MAX_JSON_ANSWER} bytes.", 200,
                            code="upstream_error")
    return data.decode("utf-8", "replace")
