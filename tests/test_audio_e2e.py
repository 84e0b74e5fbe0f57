"""/v1/audio end to end: openai SDK (and requests, as a browser client posts) -> proxy -> emulated
speech conversation, synthesize, transcribe and hide calls (tests/emulator/voice.py)."""
from __future__ import annotations

import re
import time
import uuid

import openai
import pytest
import requests

from tests.emulator.voice import speech_audio, transcript

MAX_UPLOAD = 200_000  # the proxy's input_file_max_bytes here: a too-large file stays small


@pytest.fixture(scope="module")
def audio_proxy(start_proxy):
    return start_proxy({"INPUT_FILE_MAX_BYTES": str(MAX_UPLOAD)})


def key() -> str:
    """A refresh token of its own per test: its access token is minted (and cached) afresh."""
    return f"rt-voice-{uuid.uuid4().hex[:12]}"


def requests_since(emulator, path: str, since: float) -> list:
    return [r for r in emulator.requests(path) if r["time"] >= since]


def hides_of(emulator, conversation_id: str, timeout: float = 5.0) -> list:
    """The hide PATCHes of a conversation (they are sent off the response path: wait for them)."""
    ends = time.monotonic() + timeout
    while True:
        found = [r for r in emulator.requests(f"/backend-api/conversation/{conversation_id}")
                 if r["method"] == "PATCH"]
        if found or time.monotonic() > ends:
            return found
        time.sleep(0.05)


def speech_calls(emulator, since: float):
    """(the conversation POSTs, the synthesize GETs) made since ``since``."""
    return requests_since(emulator, "/backend-api/conversation", since), \
        requests_since(emulator, "/backend-api/synthesize", since)


# --- speech -----------------------------------------------------------------------------------

def test_speech_streams_the_synthesized_bytes_and_hides_the_conversation(audio_proxy, emulator, tmp_path):
    text = "The quick brown fox jumps over the lazy dog. 你好。"
    since = time.time()
    target = tmp_path / "speech.mp3"
    with audio_proxy.client(key()).audio.speech.with_streaming_response.create(
            model="tts-1", voice="echo", input=text) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        response.stream_to_file(target)
    assert target.read_bytes() == speech_audio(text, "ember", "mp3")  # echo -> ember, mp3 by default

    (posted,), (synthesized,) = speech_calls(emulator, since)
    body = posted["json"]
    assert [m["author"]["role"] for m in body["messages"]] == ["assistant"]
    assert body["messages"][0]["content"] == {"content_type": "text", "parts": [text]}
    assert body["history_and_training_disabled"] is False  # synthesize reads the stored message
    query = synthesized["query"]
    # The posted message, not the model's own reply that followed it in the stream.
    assert query["message_id"] == body["messages"][0]["id"]
    assert (query["voice"], query["format"]) == ("ember", "mp3")
    (hide,) = hides_of(emulator, query["conversation_id"])
    assert hide["json"] == {"is_visible": False}
    assert hide["time"] >= synthesized["time"]


def test_the_message_holding_the_text_is_read_out_whatever_its_place_and_id(audio_proxy, emulator):
    # The upstream gives the posted message a new id and sends the model's own message first.
    text = "emu-voice:model_first Read this one."
    since = time.time()
    response = audio_proxy.client(key()).audio.speech.create(model="tts-1", voice="alloy", input=text)
    assert response.content == speech_audio(text, "cove", "mp3")
    (posted,), (synthesized,) = speech_calls(emulator, since)
    assert synthesized["query"]["message_id"] != posted["json"]["messages"][0]["id"]


@pytest.mark.parametrize("voice, upstream_voice, asked, made, content_type", [
    ("alloy", "cove", "opus", "opus", "audio/ogg"),
    ("nova", "maple", "aac", "aac", "audio/aac"),
    ("shimmer", "juniper", "flac", "aac", "audio/aac"),  # flac/wav/pcm: the upstream makes aac
    ("onyx", "orbit", "wav", "aac", "audio/aac"),
])
def test_voices_and_formats_are_mapped(audio_proxy, emulator, voice, upstream_voice, asked, made, content_type):
    text = f"Say it as {voice} in {asked}."
    since = time.time()
    response = audio_proxy.client(key()).audio.speech.create(model="tts-1-hd", voice=voice, input=text,
                                                             response_format=asked, speed=1.5)
    assert response.response.headers["content-type"] == content_type
    assert response.content == speech_audio(text, upstream_voice, made)
    _, (synthesized,) = speech_calls(emulator, since)
    assert (synthesized["query"]["voice"], synthesized["query"]["format"]) == (upstream_voice, made)


def test_default_voice_and_chatgpt_voice_names(audio_proxy, emulator):
    url, headers = audio_proxy.url + "/v1/audio/speech", {"Authorization": f"Bearer {key()}"}
    default = requests.post(url, headers=headers, json={"model": "tts-1", "input": "Default voice."}, timeout=30)
    assert default.status_code == 200 and default.content == speech_audio("Default voice.", "cove", "mp3")
    own = requests.post(url, headers=headers, json={"model": "tts-1", "input": "Own voice.", "voice": "glimmer"},
                        timeout=30)
    assert own.status_code == 200 and own.content == speech_audio("Own voice.", "glimmer", "mp3")


def test_speech_conversation_in_the_classic_encoding(audio_proxy):
    text = "emu-voice:cumulative The 2024 stream shape."
    response = audio_proxy.client(key()).audio.speech.create(model="tts-1", voice="echo", input=text)
    assert response.content == speech_audio(text, "ember", "mp3")


def test_a_conversation_id_that_is_no_id_is_never_put_in_a_path(audio_proxy, emulator):
    text = "emu-voice:odd_id Read me."
    since = time.time()
    response = audio_proxy.client(key()).audio.speech.create(model="tts-1", voice="alloy", input=text)
    assert response.content == speech_audio(text, "cove", "mp3")  # a query parameter is encoded: fine
    time.sleep(0.5)  # the hide would have been sent by now
    other_tests = re.compile(r"/backend-api/conversation/[0-9a-f-]{36}")  # their hides may come late
    assert [r["path"] for r in emulator.requests() if r["time"] >= since and r["method"] == "PATCH"
            and not other_tests.fullmatch(r["path"])] == []
    assert "not hiding conversation" in audio_proxy.logs()


def test_speech_from_a_download_url(audio_proxy, emulator):
    text = "emu-voice:download_url A link instead of bytes."
    response = audio_proxy.client(key()).audio.speech.create(model="tts-1", voice="sage", input=text,
                                                             response_format="opus")
    assert response.content == speech_audio(text, "glimmer", "opus")
    assert response.response.headers["content-type"] == "audio/ogg"


def test_a_download_url_to_a_refused_address_is_a_502_and_the_conversation_is_still_hidden(audio_proxy, emulator):
    since = time.time()
    with pytest.raises(openai.APIStatusError) as caught:
        audio_proxy.client(key()).audio.speech.create(model="tts-1", voice="ash",
                                                      input="emu-voice:metadata_url Fetch the metadata.")
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "speech_download_failed"
    assert "169.254.169.254" in caught.value.body["message"]
    _, (synthesized,) = speech_calls(emulator, since)
    assert hides_of(emulator, synthesized["query"]["conversation_id"])


def test_a_failing_synthesize_is_an_openai_error(audio_proxy, emulator):
    with pytest.raises(openai.APIStatusError) as caught:
        audio_proxy.client(key()).audio.speech.create(model="tts-1", voice="coral", input="emu-voice:synth_error x")
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "upstream_error"
    assert "Emulated synthesis failure" in caught.value.body["message"]


def test_an_upstream_rate_limit_is_a_429_and_cools_the_token_down(audio_proxy, emulator):
    client = audio_proxy.client(key())
    with pytest.raises(openai.RateLimitError) as caught:
        client.audio.speech.create(model="tts-1", voice="alloy", input="emu-voice:busy Too soon.")
    assert caught.value.response.headers["retry-after"] == "7"
    since = time.time()
    with pytest.raises(openai.RateLimitError):  # cooling down: answered without asking the upstream
        client.audio.speech.create(model="tts-1", voice="alloy", input="Right after.")
    assert speech_calls(emulator, since) == ([], [])


def test_a_client_that_leaves_during_the_speech_conversation_closes_and_hides_it(audio_proxy, emulator):
    since = time.time()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(audio_proxy.url + "/v1/audio/speech", headers={"Authorization": f"Bearer {key()}"},
                      json={"model": "tts-1", "input": "emu-voice:hang Wait for it."}, timeout=(5, 1))
    left = time.time()
    ends = time.monotonic() + 5
    while time.monotonic() < ends:
        (stream,) = [s for s in emulator.streams() if s["scenario"] == "speech_hang" and s["started"] >= since]
        if stream["ended"] is not None:
            break
        time.sleep(0.1)
    assert stream["outcome"] == "client_closed"
    assert stream["ended"] - left < 2.0  # noticed at the next 0.5 s tick, not after the 20 s hang
    assert requests_since(emulator, "/backend-api/synthesize", since) == []
    assert hides_of(emulator, stream["conversation_id"])  # what was created upstream goes too


@pytest.mark.parametrize("body, param", [
    ({"model": "tts-1", "input": "x" * 4097, "voice": "alloy"}, "input"),
    ({"model": "tts-1", "input": "", "voice": "alloy"}, "input"),
    ({"model": "tts-1", "input": "hi", "voice": "robot"}, "voice"),
    ({"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "ogg"}, "response_format"),
    ({"model": "tts-1", "input": "hi", "voice": "alloy", "speed": 5}, "speed"),
    ({"model": "tts-1", "input": "hi", "voice": "alloy", "speed": "fast"}, "speed"),
    ({"input": "hi", "voice": "alloy"}, "model"),
])
def test_bad_speech_requests_are_400s_without_an_upstream_call(audio_proxy, emulator, body, param):
    since = time.time()
    response = requests.post(audio_proxy.url + "/v1/audio/speech", json=body,
                             headers={"Authorization": f"Bearer {key()}"}, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert speech_calls(emulator, since) == ([], [])


@pytest.mark.parametrize("raw", [
    b"[]", b"null", b"42", b'"text"', b"{", b'{"model": "tts-1", "input": ["a"], "voice": "alloy"}',
    b'{"model": "tts-1", "input": "a", "voice": ["alloy"]}', b'{"model": "tts-1", "input": "a", "voice": {}}',
    b'{"model": "tts-1", "input": "a", "response_format": ["mp3"]}', b'{"model": ["tts-1"], "input": "a"}',
    b'{"model": "tts-1", "input": "a", "speed": true}', b'{"model": "tts-1", "input": "a", "instructions": 1}',
])
def test_malformed_speech_bodies_are_400s(audio_proxy, raw):
    response = requests.post(audio_proxy.url + "/v1/audio/speech", data=raw, timeout=30,
                             headers={"Authorization": f"Bearer {key()}", "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_transcription_without_multipart_is_a_400(audio_proxy):
    response = requests.post(audio_proxy.url + "/v1/audio/transcriptions", json={"file": "x", "model": "whisper-1"},
                             headers={"Authorization": f"Bearer {key()}"}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["param"] == "file"


def test_the_longest_input_is_accepted(audio_proxy):
    text = "a" * 4096
    response = audio_proxy.client(key()).audio.speech.create(model="tts-1", voice="fable", input=text)
    assert response.content == speech_audio(text, "breeze", "mp3")


def test_speech_refreshes_a_rejected_token_once(audio_proxy, emulator):
    client = audio_proxy.client(key())
    before = time.time()
    client.audio.speech.create(model="tts-1", voice="alloy", input="first")
    (first_call,) = requests_since(emulator, "/backend-api/conversation", before)
    since = time.time()
    emulator.revoke(first_call["headers"]["Authorization"][7:])
    response = client.audio.speech.create(model="tts-1", voice="alloy", input="after the refresh")
    assert response.content == speech_audio("after the refresh", "cove", "mp3")
    rejected, accepted = requests_since(emulator, "/backend-api/conversation", since)
    assert rejected["headers"]["Authorization"] == first_call["headers"]["Authorization"]
    assert accepted["headers"]["Authorization"] != rejected["headers"]["Authorization"]


# --- transcriptions ---------------------------------------------------------------------------

AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8


def test_transcription_json_and_text(audio_proxy, emulator, tmp_path):
    path = tmp_path / "hello.wav"
    path.write_bytes(AUDIO)
    client = audio_proxy.client(key())
    since = time.time()
    with path.open("rb") as handle:
        result = client.audio.transcriptions.create(model="whisper-1", file=handle, language="de",
                                                    prompt="ignored", temperature=0.2)
    assert result.text == transcript(AUDIO, "de")
    (sent,) = requests_since(emulator, "/backend-api/transcribe", since)
    assert sent["form"] == {"language": "de"}
    assert sent["headers"]["Content-Type"].startswith("multipart/form-data")
    text = client.audio.transcriptions.create(model="whisper-1", file=("hello.wav", AUDIO, "audio/wav"),
                                              response_format="text")
    assert text.strip() == transcript(AUDIO, "")


def test_plain_text_upstream_answers_and_verbose_json(audio_proxy):
    data = b"EMU-TEXT" + AUDIO
    result = audio_proxy.client(key()).audio.transcriptions.create(
        model="whisper-1", file=("a.mp3", data, "audio/mpeg"), response_format="verbose_json", language="en")
    assert result.text == transcript(data, "en")
    assert result.language == "en" and result.duration == 0.0


def test_translation_is_the_same_upstream_call(audio_proxy, emulator):
    since = time.time()
    result = audio_proxy.client(key()).audio.translations.create(model="whisper-1", file=("b.ogg", AUDIO, "audio/ogg"))
    assert result.text == transcript(AUDIO, "")
    assert len(requests_since(emulator, "/backend-api/transcribe", since)) == 1


def test_transcription_refreshes_a_rejected_token_once(audio_proxy, emulator):
    client = audio_proxy.client(key())
    before = time.time()
    client.audio.transcriptions.create(model="whisper-1", file=("c.wav", AUDIO, "audio/wav"))
    (first,) = requests_since(emulator, "/backend-api/transcribe", before)
    emulator.revoke(first["headers"]["Authorization"][7:])
    since = time.time()
    result = client.audio.transcriptions.create(model="whisper-1", file=("c.wav", AUDIO, "audio/wav"))
    assert result.text == transcript(AUDIO, "")
    rejected, accepted = requests_since(emulator, "/backend-api/transcribe", since)
    assert rejected["headers"]["Authorization"] == first["headers"]["Authorization"] != \
        accepted["headers"]["Authorization"]


def test_an_access_token_the_upstream_rejects_is_a_401(audio_proxy, emulator):
    from tests.emulator.tokens import mint_access_token

    token = mint_access_token("voice-revoked", 3600)
    emulator.revoke(token)
    with pytest.raises(openai.AuthenticationError):
        audio_proxy.client(token).audio.transcriptions.create(model="whisper-1", file=("d.wav", AUDIO, "audio/wav"))


def test_transcription_failures_and_bad_requests(audio_proxy, emulator):
    client = audio_proxy.client(key())
    with pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=("e.wav", b"EMU-ERROR" + AUDIO, "audio/wav"))
    assert caught.value.status_code == 502 and "Emulated transcription failure" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=("f.wav", AUDIO, "audio/wav"), response_format="srt")
    assert caught.value.body["param"] == "response_format"

    since = time.time()
    url, headers = audio_proxy.url + "/v1/audio/transcriptions", {"Authorization": f"Bearer {key()}"}
    cases = [({"model": "whisper-1"}, None, 400, "file"),
             ({"model": "whisper-1"}, {"file": ("g.wav", b"", "audio/wav")}, 400, "file"),
             ({}, {"file": ("h.wav", AUDIO, "audio/wav")}, 400, "model"),
             ({"model": "whisper-1", "temperature": "2"}, {"file": ("i.wav", AUDIO, "audio/wav")}, 400, "temperature"),
             ({"model": "whisper-1", "language": "../x"}, {"file": ("j.wav", AUDIO, "audio/wav")}, 400, "language"),
             ({"model": "whisper-1"}, {"file": ("k.wav", bytes(MAX_UPLOAD + 1), "audio/wav")}, 413, "file")]
    for form, files, status, param in cases:
        response = requests.post(url, headers=headers, data=form, files=files, timeout=30)
        assert (response.status_code, response.json()["error"]["param"]) == (status, param), form
    assert requests_since(emulator, "/backend-api/transcribe", since) == []


def test_audio_with_the_services_own_keys_and_pool(start_proxy, emulator):
    api_key = "sk-voice-pool"
    proxy = start_proxy({"API_KEYS": api_key, "TOKEN_POOL": f"bad-voice-{uuid.uuid4().hex},{key()}"})
    result = proxy.client(api_key).audio.transcriptions.create(model="whisper-1", file=("l.wav", AUDIO, "audio/wav"))
    assert result.text == transcript(AUDIO, "")
    speech = proxy.client(api_key).audio.speech.create(model="tts-1", voice="alloy", input="From the pool.")
    assert speech.content == speech_audio("From the pool.", "cove", "mp3")
    with pytest.raises(openai.AuthenticationError):
        proxy.client("sk-wrong").audio.speech.create(model="tts-1", voice="alloy", input="no")
    dead = start_proxy({"API_KEYS": api_key, "TOKEN_POOL": f"bad-a-{uuid.uuid4().hex},bad-b-{uuid.uuid4().hex}"})
    with pytest.raises(openai.APIStatusError) as caught:  # every pool token tried, none usable
        dead.client(api_key).audio.transcriptions.create(model="whisper-1", file=("m.wav", AUDIO, "audio/wav"))
    assert (caught.value.status_code, caught.value.body["code"]) == (503, "pool_exhausted")
