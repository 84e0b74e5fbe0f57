"""/v1/audio requests, from a validated request to the upstream's answer, with chat's rules: the
client's credentials or the pool (failing over as chat does), the token's rate limit and cool-down,
a 401 answered by one refresh and one retry, upstream errors mapped by upstream/errors.py.

Speech needs a conversation: it is read only until the posted message shows (its id and the
conversation's), then closed, and hidden once the audio has been sent (or the call failed),
whatever need_delete_conversation_after_response says: it is ours, not the user's.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional

from .account_calls import AccountCalls
from .auth.pool import TokenPool, with_failover
from .auth.tokens import Credentials, TokenResolver
from .conversation_hider import ConversationHider, HideJob
from .errors import ApiError, UpstreamError
from .limits import RateLimiter, limit_key
from .settings import Settings
from .sse.events import ConversationId, Event, MessageFinished, UpstreamFailure
from .translate.audio_request import SpeechRequest, TranscriptionRequest
from .upstream.client import UpstreamClient
from .upstream.reply import ReplyStream, watched_batches
from .upstream.voice import SpeechAudio, SpeechTarget, VoiceCalls, speech_payload

log = logging.getLogger(__name__)

SPEECH_MODEL = "auto"  # the slug the web app sends today; the speech conversation's model does not matter
TRANSCRIBE_LIMIT_SLUG = "transcribe"  # the rate-limit cool-down key of transcriptions
TICK = 0.5  # how often a silent speech conversation checks its client and its deadline


@dataclass
class Session:
    """One account's turn: the credentials and the access token the upstream currently accepts."""

    credentials: Credentials
    access_token: str


class VoiceService:
    def __init__(self, settings: Settings, tokens: TokenResolver, upstream: UpstreamClient, calls: VoiceCalls,
                 limiter: Optional[RateLimiter], pool: TokenPool, hider: ConversationHider[HideJob]) -> None:
        self.settings = settings
        self.tokens = tokens
        self.upstream = upstream
        self.calls = calls
        self.limiter = limiter
        self.pool = pool
        self._hider = hider  # the worker's one queue of hides, shared with chat
        self._account_calls = AccountCalls(upstream, tokens, limiter)  # chat's cool-down and one refresh

    def speak(self, speech: SpeechRequest, credentials: Optional[Credentials],
              client_gone: Callable[[], bool]) -> SpeechAudio:
        """The open audio (the caller sends it, then closes it)."""
        return with_failover(self.pool, credentials, lambda account: self._speak(speech, account, client_gone))

    def transcribe(self, request: TranscriptionRequest, credentials: Optional[Credentials]) -> str:
        return with_failover(self.pool, credentials, lambda account: self._transcribe(request, account))

    def _transcribe(self, request: TranscriptionRequest, credentials: Credentials) -> str:
        session = self._session(credentials, TRANSCRIBE_LIMIT_SLUG)
        return self._account_calls.retrying(session, TRANSCRIBE_LIMIT_SLUG, lambda token: self.calls.transcribe(
            request.upload, token, credentials.account_id))

    def _speak(self, speech: SpeechRequest, credentials: Credentials, client_gone: Callable[[], bool]) -> SpeechAudio:
        session = self._session(credentials, SPEECH_MODEL)
        finder = SpeechMessageFinder(speech.text)

        def hide() -> None:
            if finder.conversation_id is not None:  # none: nothing was created upstream
                self._hider.submit(HideJob(finder.conversation_id, session.access_token, credentials.account_id))

        try:
            target = self._speech_conversation(speech.text, finder, session, client_gone)
            audio = self._account_calls.retrying(session, SPEECH_MODEL, lambda token: self.calls.synthesize(
                target, speech.voice, speech.audio_format, token, credentials.account_id))
        except ApiError as exc:
            # Once the speech conversation exists, no other pool token may post it again.
            exc.turn_posted = exc.turn_posted or finder.conversation_id is not None
            hide()
            raise
        except BaseException:  # a client that left: the conversation goes too
            hide()
            raise
        audio.on_close(hide)  # once the audio is sent: hiding must not race the synthesis
        return audio

    def _session(self, credentials: Credentials, limit_slug: str) -> Session:
        session = Session(credentials, self.tokens.access_token(credentials))  # bad keys fail here
        if self.limiter is not None:
            self.limiter.acquire(limit_key(credentials), limit_slug)
        return session

    def _speech_conversation(self, text: str, finder: "SpeechMessageFinder", session: Session,
                             client_gone: Callable[[], bool]) -> SpeechTarget:
        payload, message_id = speech_payload(text, SPEECH_MODEL)
        reply = ReplyStream(
            lambda deadline: self._account_calls.open_conversation(payload, session, SPEECH_MODEL, deadline),
            read_timeout=self.settings.upstream_read_timeout)
        deadline = time.monotonic() + self.settings.non_stream_deadline
        try:
            for batch in watched_batches(reply.batches(TICK), client_gone, deadline, "speech conversation"):
                finder.feed(batch)
                if finder.found:
                    break
        except ApiError as exc:
            exc.turn_posted = exc.turn_posted or reply.accepted
            raise
        finally:
            reply.close()  # read no further than the posted message: the rest is not needed
        return finder.target(message_id)


class SpeechMessageFinder:
    """Reads the speech conversation's events for its id and the assistant message holding the text:
    the one whose text matches, else the first finished assistant message, else the id we sent (the
    upstream keeps the ids a client gives its messages)."""

    def __init__(self, text: str) -> None:
        self._text = text.strip()
        self.conversation_id: Optional[str] = None
        self._first: Optional[str] = None
        self._matching: Optional[str] = None

    @property
    def found(self) -> bool:
        return self.conversation_id is not None and self._matching is not None

    def feed(self, events: List[Event]) -> None:
        for event in events:
            if isinstance(event, ConversationId):
                self.conversation_id = event.conversation_id
            elif isinstance(event, UpstreamFailure):
                raise UpstreamError(502, f"The upstream failed: {event.message}", code=event.code or "upstream_error")
            elif isinstance(event, MessageFinished) and event.role == "assistant":
                self._first = self._first or event.message_id
                if _message_text(event) == self._text:
                    self._matching = event.message_id

    def target(self, sent_id: str) -> SpeechTarget:
        if self.conversation_id is None:
            raise UpstreamError(502, "The upstream did not open a conversation for the speech.",
                                code="incomplete_stream")
        return SpeechTarget(self.conversation_id, self._matching or self._first or sent_id)


def _message_text(event: MessageFinished) -> str:
    content = event.message.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return "".join(part for part in parts if isinstance(part, str)).strip() if isinstance(parts, list) else ""
