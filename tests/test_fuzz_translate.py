"""Property-based fuzzing of the request translation: OpenAI body -> ChatRequest -> upstream payload.

Two properties (issue 5 item 7):

* robustness: for *any* JSON-like value, ``parse_chat_request`` returns a ChatRequest or raises a 400
  ApiError (never another exception); every ChatRequest it returns is turned by
  ``build_conversation_payload`` into a JSON-serialisable payload with one upstream message per input
  message (o1 models: after folding system turns), or into an ApiError;
* exactness: for *valid-shaped* requests, the translation keeps the order, maps the roles and keeps
  every character of the text.
"""
from __future__ import annotations

import json
import math
from typing import Any, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend_to_api.errors import ApiError
from backend_to_api.models import ModelRegistry
from backend_to_api.settings import Settings
from backend_to_api.translate.chat_request import ROLE_MAP, ChatRequest, ImagePart, parse_chat_request
from backend_to_api.translate.conversation import build_conversation_payload

REGISTRY = ModelRegistry(Settings())
GPT_4O = REGISTRY.resolve("gpt-4o")
O1_MINI = REGISTRY.resolve("o1-mini")
SPECS = [GPT_4O, O1_MINI]

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])

# --------------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------------

PLAUSIBLE_KEYS = ["model", "messages", "role", "content", "type", "text", "image_url", "url", "detail",
                  "stream", "stream_options", "include_usage", "name", "tool_calls", "tool_call_id",
                  "temperature", "max_tokens", "n", "input_text"]
PLAUSIBLE_STRINGS = ["gpt-4o", "o1-mini", "", " ", "system", "user", "assistant", "developer", "tool",
                     "function", "text", "input_text", "image_url", "http://127.0.0.1/x.png",
                     "https://example.com/a.jpg", "data:image/png;base64,iVBORw0KGgo=", "data:,hello",
                     "ftp://x/y", "file:///etc/passwd", "javascript:alert(1)", "auto", "low", "high"]

texts = st.one_of(
    st.text(),                                        # arbitrary unicode, lone surrogates included
    st.sampled_from(PLAUSIBLE_STRINGS),
    st.text(alphabet="ab\u00e9\U0001F600\n\x00", min_size=0, max_size=20).map(lambda s: s * 5000),  # huge
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2 ** 80), max_value=2 ** 80),
    st.floats(allow_nan=True, allow_infinity=True), texts,
)
keys = st.one_of(st.sampled_from(PLAUSIBLE_KEYS), st.text(max_size=10))


def _json_like(children):
    return st.one_of(st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=6))


json_like = st.recursive(scalars, _json_like, max_leaves=30)

# Message-shaped values whose fields are arbitrary: reaches deep into the parser more often.
content_parts = st.fixed_dictionaries(
    {},
    optional={"type": st.one_of(st.sampled_from(["text", "input_text", "image_url", "image", None]), json_like),
              "text": st.one_of(texts, json_like),
              "image_url": st.one_of(
                  st.sampled_from(PLAUSIBLE_STRINGS),
                  st.fixed_dictionaries({}, optional={"url": st.one_of(st.sampled_from(PLAUSIBLE_STRINGS), json_like),
                                                      "detail": json_like}),
                  json_like)},
)
message_like = st.fixed_dictionaries(
    {},
    optional={"role": st.one_of(st.sampled_from(list(ROLE_MAP) + ["bot", "", "System", None]), json_like),
              "content": st.one_of(texts, st.lists(st.one_of(content_parts, json_like), max_size=4), json_like),
              "name": json_like},
)
body_like = st.fixed_dictionaries(
    {},
    optional={"model": st.one_of(st.sampled_from(["gpt-4o", "o1-mini", "", "  ", "x"]), json_like),
              "messages": st.one_of(st.lists(st.one_of(message_like, json_like), max_size=6), json_like),
              "stream": st.one_of(st.booleans(), st.none(), json_like),
              "stream_options": st.one_of(st.fixed_dictionaries({}, optional={"include_usage": json_like}),
                                          st.none(), json_like),
              "temperature": json_like},
)
any_body = st.one_of(json_like, body_like, body_like)


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------

def _parse_or_400(body: Any):
    """The ChatRequest, or None when the body was refused with a 400 ApiError."""
    try:
        request = parse_chat_request(body, max_files=10)
    except ApiError as error:
        assert error.status == 400, error
        assert isinstance(error.message, str) and error.message
        json.dumps(error.body())  # the envelope itself is serialisable
        return None
    assert isinstance(request, ChatRequest)
    return request


def _expected_upstream_count(request: ChatRequest, reasoning: bool) -> int:
    if not reasoning:
        return len(request.messages)
    rest = [m for m in request.messages if m.role != "system"]
    has_system_text = any(m.role == "system" and m.text for m in request.messages)
    has_user = any(m.role == "user" for m in rest)
    return len(rest) + (1 if has_system_text and not has_user else 0)


def _check_payload(request: ChatRequest) -> None:
    for spec in SPECS:
        try:
            payload = build_conversation_payload(request, spec, hide_history=False)
        except ApiError as error:
            assert error.status == 400, error
            # Without an upload-capable ``files`` the only refusal is a message carrying images.
            assert any(m.images for m in request.messages)
            continue
        assert isinstance(payload, dict)
        json.dumps(payload, allow_nan=False)
        assert payload["model"] == spec.slug
        assert payload["history_and_training_disabled"] is False
        assert len(payload["messages"]) == _expected_upstream_count(request, spec.family.reasoning)
        roles = {m["author"]["role"] for m in payload["messages"]}
        assert roles <= {"system", "user", "assistant"}
        if spec.family.reasoning:
            assert "system" not in roles
        ids = [m["id"] for m in payload["messages"]] + [payload["parent_message_id"]]
        assert len(set(ids)) == len(ids)


# --------------------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------------------

@FUZZ
@given(any_body)
def test_any_json_is_a_request_or_a_400(body):
    request = _parse_or_400(body)
    if request is not None:
        _check_payload(request)


@FUZZ
@given(st.lists(message_like, min_size=1, max_size=6), st.sampled_from(["gpt-4o", "o1-mini"]))
def test_message_shaped_json_is_a_request_or_a_400(messages, model):
    request = _parse_or_400({"model": model, "messages": messages})
    if request is not None:
        assert len(request.messages) == len(messages)
        _check_payload(request)


@pytest.mark.parametrize("role", [[], {}, ["user"], {"x": 1}], ids=["list", "dict", "list-user", "dict-x"])
def test_unhashable_role_is_a_400(role):
    with pytest.raises(ApiError) as caught:
        parse_chat_request({"model": "gpt-4o", "messages": [{"role": role, "content": "hi"}]}, max_files=10)
    assert caught.value.status == 400


# --------------------------------------------------------------------------------------------------
# Exactness on valid-shaped requests
# --------------------------------------------------------------------------------------------------

# Tool results need a tool_call_id and are rendered as <tool_response> blocks: tests/test_tool_calls_*.py.
OPENAI_ROLES = ["system", "user", "assistant", "developer"]
plain_text = st.one_of(st.text(max_size=200), st.sampled_from(["", " ", "\n", "héllo 👋🏽", "a\r\nb", "\u2028"]))
text_parts = st.lists(
    st.builds(lambda kind, text: {"type": kind, "text": text}, st.sampled_from(["text", "input_text"]), plain_text),
    min_size=0, max_size=4,
)
valid_message = st.builds(
    lambda role, content: {"role": role, "content": content},
    st.sampled_from(OPENAI_ROLES),
    st.one_of(plain_text, text_parts, st.none()),
)
valid_body = st.builds(
    lambda model, messages, stream, include: {
        "model": model, "messages": messages, "stream": stream,
        **({"stream_options": {"include_usage": include}} if include is not None else {}),
    },
    st.sampled_from(["gpt-4o", " gpt-4o ", "o1-mini"]),
    st.lists(valid_message, min_size=1, max_size=8),
    st.sampled_from([True, False, None]),
    st.sampled_from([True, False, None]),
)


def _openai_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content)


def _expected_turns(body: dict, reasoning: bool) -> List[Tuple[str, str]]:
    """(upstream role, text) per upstream message, computed independently of the product code."""
    turns = [(ROLE_MAP[m["role"]], _openai_text(m["content"])) for m in body["messages"]]
    if not reasoning:
        return turns
    system = [text for role, text in turns if role == "system" and text]
    rest = [(role, text) for role, text in turns if role != "system"]
    if not system:
        return rest
    joined = "\n\n".join(system)
    for index, (role, text) in enumerate(rest):
        if role == "user":
            # the folded message's parts are (system text,) + the user's parts, joined with "\n"
            original = body_parts_of_rest(body)[index]
            rest[index] = ("user", "\n".join([joined] + original))
            return rest
    return [("user", joined)] + rest


def body_parts_of_rest(body: dict) -> List[List[str]]:
    """The text pieces of each non-system message (a string content is one piece; null is "")."""
    pieces = []
    for m in body["messages"]:
        if ROLE_MAP[m["role"]] == "system":
            continue
        content = m["content"]
        if content is None:
            pieces.append([""])
        elif isinstance(content, str):
            pieces.append([content])
        else:
            pieces.append([part["text"] for part in content])
    return pieces


@FUZZ
@given(valid_body)
def test_valid_requests_translate_exactly(body):
    request = parse_chat_request(body, max_files=10)
    assert request.model == body["model"].strip()
    assert request.stream is bool(body["stream"])
    assert request.include_usage is (body.get("stream_options", {}).get("include_usage") is True)
    assert [m.role for m in request.messages] == [ROLE_MAP[m["role"]] for m in body["messages"]]
    assert [m.text for m in request.messages] == [_openai_text(m["content"]) for m in body["messages"]]
    assert all(not m.images for m in request.messages)

    for spec in SPECS:
        payload = build_conversation_payload(request, spec, hide_history=True)
        assert payload["history_and_training_disabled"] is True
        assert payload["action"] == "next"
        assert payload["conversation_mode"] == {"kind": "primary_assistant"}
        # Exact wire text survives a JSON round trip (what requests sends upstream).
        wire = json.loads(json.dumps(payload))
        got = [(m["author"]["role"], m["content"]["parts"][0]) for m in wire["messages"]]
        assert got == _expected_turns(body, spec.family.reasoning)
        for m in wire["messages"]:
            assert m["content"]["content_type"] == "text"
            assert len(m["content"]["parts"]) == 1
            assert m["metadata"] == {}


@FUZZ
@given(st.lists(st.sampled_from(["http://127.0.0.1/a.png", "https://h/b", "data:,x"]), min_size=0, max_size=14),
       plain_text)
def test_image_parts_are_kept_in_order_and_counted(urls, text):
    content = [{"type": "text", "text": text}] + [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    try:
        request = parse_chat_request(body, max_files=10)
    except ApiError as error:
        assert len(urls) > 10
        assert error.status == 400 and error.code == "too_many_files"
        return
    assert len(urls) <= 10
    (message,) = request.messages
    assert message.parts == (text,) + tuple(ImagePart(u) for u in urls)
    assert message.text == text
    if urls:
        with pytest.raises(ApiError) as caught:
            build_conversation_payload(request, GPT_4O, hide_history=False)
        assert caught.value.status == 400


def test_nan_and_huge_numbers_do_not_leak_into_the_payload():
    body = {"model": "gpt-4o", "temperature": math.nan, "max_tokens": 10 ** 100,
            "messages": [{"role": "user", "content": "x" * 1_000_000}]}
    request = parse_chat_request(body, max_files=10)
    payload = build_conversation_payload(request, GPT_4O, hide_history=False)
    assert payload["messages"][0]["content"]["parts"] == ["x" * 1_000_000]
    json.dumps(payload, allow_nan=False)
