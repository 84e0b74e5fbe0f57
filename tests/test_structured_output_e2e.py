"""Structured output on /v1/chat/completions end to end: openai SDK / LangChain / raw SSE -> proxy -> emulator.

The emulated model follows the response-format protocol (tests/emulator/protocol_model.py): plain
user text gets JSON, ``{"emu": "agent", "bad_first"|"always_bad"|"fence": true}`` gets JSON that goes
wrong as asked, and ``{"emu": "text", "text": ...}`` makes it say exactly that text (on the retry too).
"""
from __future__ import annotations

import json
import time
import uuid

import openai
import pytest
import requests
from pydantic import BaseModel

from .conftest import directive, wait_until
from .emulator.protocol_model import MISMATCHES

PARIS = '{"city": "Paris", "temperature": 21.5}'


class Weather(BaseModel):
    city: str
    temperature: float


def ask(proxy, content: str, **kwargs):
    return proxy.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": content}], **kwargs)


def posts_during(emulator, action):
    """What ``action`` returned (or raised) and the conversation POSTs it made."""
    before = len(emulator.conversations())
    try:
        result = action()
    except Exception as exc:  # noqa: BLE001 - handed back to the test to assert on
        result = exc
    return result, emulator.conversations()[before:]


def sse_frames(body: str):
    return [line[6:] for line in body.split("\n") if line.startswith("data: ")]


def raw_stream(proxy, content: str, **body):
    response = requests.post(
        proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-raw"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}], "stream": True, **body},
        timeout=30,
    )
    return response, response.content.decode("utf-8")


def message_texts(conversation) -> list:
    return ["\n".join(message["content"]["parts"]) for message in conversation["json"]["messages"]]


WEATHER_FORMAT = {"type": "json_schema", "json_schema": {
    "name": "weather", "strict": True, "schema": Weather.model_json_schema() | {"additionalProperties": False}}}


# --- json_object ------------------------------------------------------------------------------

def test_json_object_asks_the_model_for_json_and_answers_it(proxy, emulator):
    reply, posts = posts_during(emulator, lambda: ask(proxy, "tell me the weather",
                                                      response_format={"type": "json_object"}))
    assert json.loads(reply.choices[0].message.content) == {"echo": "tell me the weather"}
    assert reply.choices[0].finish_reason == "stop"
    assert len(posts) == 1
    first = posts[0]["json"]["messages"][0]
    assert first["author"]["role"] == "system" and first["content"]["parts"][0].startswith("# Response format")


def test_a_model_without_system_role_gets_the_instruction_in_the_user_turn(proxy, emulator):
    reply, posts = posts_during(emulator, lambda: proxy.client().chat.completions.create(
        model="o1-mini", messages=[{"role": "user", "content": "tell me the weather"}],
        response_format=WEATHER_FORMAT))
    assert Weather.model_validate_json(reply.choices[0].message.content)
    [only] = posts[0]["json"]["messages"]
    assert only["author"]["role"] == "user" and "# Response format" in only["content"]["parts"][0]


def test_a_fenced_reply_with_prose_is_unwrapped(proxy):
    text = f"Sure, here it is:\n```json\n{PARIS}\n```\nAnything else?"
    reply = ask(proxy, directive(text=text), response_format={"type": "json_object"})
    assert reply.choices[0].message.content == PARIS
    fenced = directive(emu="agent", fence=True)  # the emulated model fences its echo of these words
    reply = ask(proxy, fenced, response_format={"type": "json_object"})
    assert json.loads(reply.choices[0].message.content) == {"echo": fenced}


def test_json_object_stream_sends_the_checked_json(proxy, emulator):
    text = f"```json\n{PARIS}\n```"
    chunks, posts = posts_during(emulator, lambda: list(ask(
        proxy, directive(text=text, chunk=2), response_format={"type": "json_object"}, stream=True,
        stream_options={"include_usage": True})))
    assert len(posts) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == PARIS
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


# --- json_schema ------------------------------------------------------------------------------

def test_parse_with_a_pydantic_model(proxy, emulator):
    completion, posts = posts_during(emulator, lambda: proxy.client().chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": directive(text=f"Here: {PARIS}")}],
        response_format=Weather))
    assert completion.choices[0].message.parsed == Weather(city="Paris", temperature=21.5)
    instruction = message_texts(posts[0])[0]
    assert "(named Weather)" in instruction and '"temperature"' in instruction


def test_parse_with_the_emulated_model_synthesizing_an_instance(proxy):
    completion = proxy.client().chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": "weather in Paris?"}], response_format=Weather)
    assert isinstance(completion.choices[0].message.parsed, Weather)


def test_stream_helper_with_a_pydantic_model(proxy):
    with proxy.client().chat.completions.stream(
            model="gpt-4o", messages=[{"role": "user", "content": directive(text=PARIS, chunk=1)}],
            response_format=Weather) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Weather(city="Paris", temperature=21.5)
    assert "content.done" in events


def test_a_reply_that_does_not_fit_the_schema_gets_one_retry(proxy, emulator):
    completion, posts = posts_during(emulator, lambda: proxy.client().chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": directive(emu="agent", bad_first=True)}],
        response_format=Weather))
    assert isinstance(completion.choices[0].message.parsed, Weather)
    assert len(posts) == 2
    first, retry = message_texts(posts[0]), message_texts(posts[1])
    assert retry[:len(first)] == first  # the whole history again,
    bad, correction = retry[len(first):]  # then the bad reply and the correction
    assert json.loads(bad) == MISMATCHES[0]  # what the emulated model said first, as it said it
    assert [m["author"]["role"] for m in posts[1]["json"]["messages"][-2:]] == ["assistant", "user"]
    assert correction.startswith("Your previous reply was not valid: it does not match the JSON Schema")
    assert correction.endswith("Answer again with the JSON object only.")
    assert completion.usage.prompt_tokens > 0 and completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens)


def test_the_retry_in_a_stream(proxy, emulator):
    def run():
        with proxy.client().chat.completions.stream(
                model="gpt-4o", messages=[{"role": "user", "content": directive(emu="agent", bad_first=True)}],
                response_format=Weather) as stream:
            return stream.get_final_completion()

    final, posts = posts_during(emulator, run)
    assert isinstance(final.choices[0].message.parsed, Weather)
    assert len(posts) == 2


@pytest.mark.parametrize("content", [directive(emu="agent", always_bad=True), directive(text="It is sunny.")])
def test_always_bad_is_a_clear_502_after_exactly_two_conversations(proxy, emulator, content):
    error, posts = posts_during(emulator, lambda: ask(proxy, content, response_format=WEATHER_FORMAT))
    assert isinstance(error, openai.APIStatusError), error
    assert error.status_code == 502
    assert error.body["code"] == "invalid_json_output" and error.body["param"] == "response_format"
    assert "did not match the requested response_format, also after one retry" in error.body["message"]
    said = "It is sunny." if "sunny" in content else json.dumps(MISMATCHES[0])
    assert error.body["message"].endswith(f"The model's last reply was: {said}")  # never silently dropped
    assert error.response.headers["x-should-retry"] == "false"
    assert len(posts) == 2


def test_always_bad_in_a_stream_ends_with_an_error_frame(proxy, emulator):
    (response, body), posts = posts_during(emulator, lambda: raw_stream(
        proxy, directive(emu="agent", always_bad=True), response_format=WEATHER_FORMAT))
    assert response.status_code == 200 and len(posts) == 2
    frames = sse_frames(body)
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    errors = [chunk["error"] for chunk in chunks if "error" in chunk]
    assert len(errors) == 1 and errors[0]["code"] == "invalid_json_output"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # and the SDK raises it
    stream = ask(proxy, directive(emu="agent", always_bad=True), response_format=WEATHER_FORMAT, stream=True)
    with pytest.raises(openai.APIError, match="after one retry"):
        list(stream)


def test_an_upstream_failure_is_not_retried(proxy, emulator):
    error, posts = posts_during(emulator, lambda: ask(proxy, directive(emu="error_midstream"),
                                                      response_format={"type": "json_object"}))
    assert isinstance(error, openai.APIStatusError) and error.status_code == 502
    assert error.body["code"] == "upstream_error"
    assert len(posts) == 1


# --- with tools: a turn that calls them is passed on, the answer after them is checked ---------

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def tool_round(proxy, messages, stream: bool):
    """One turn with tools and the format: (content, [(id, name, arguments)], finish_reason)."""
    kwargs = dict(model="gpt-4o", messages=messages, tools=TOOLS, response_format=WEATHER_FORMAT)
    if not stream:
        choice = proxy.client().chat.completions.create(**kwargs).choices[0]
        calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or ()]
        return choice.message.content, calls, choice.finish_reason
    content, calls, finish = "", {}, None
    for chunk in proxy.client().chat.completions.create(stream=True, **kwargs):
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for call in delta.tool_calls or ():
            entry = calls.setdefault(call.index, [call.id, call.function.name, ""])
            entry[2] += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    return content or None, [tuple(entry) for entry in calls.values()], finish


@pytest.mark.parametrize("stream", [False, True])
def test_with_tools_the_call_comes_first_then_the_checked_json(proxy, emulator, stream):
    messages = [{"role": "user", "content": "What is the weather in Paris? Answer as JSON."}]
    (content, calls, finish), posts = posts_during(emulator, lambda: tool_round(proxy, messages, stream))
    assert finish == "tool_calls" and content is None and len(posts) == 1  # a call is not checked, not retried
    [(call_id, name, arguments)] = calls
    assert name == "get_weather" and json.loads(arguments) == {"city": "x"}
    messages += [{"role": "assistant", "content": None, "tool_calls": [
                     {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
                 {"role": "tool", "tool_call_id": call_id, "content": "21.5 C, sunny"}]
    content, calls, finish = tool_round(proxy, messages, stream)
    assert finish == "stop" and calls == []
    assert Weather.model_validate_json(content)


# --- raw SSE as NextChat reads it, keep-alives, thinking ----------------------------------------

def test_raw_sse_lines_and_keep_alives_while_the_reply_is_held(proxy):
    started = time.monotonic()
    response, body = raw_stream(proxy, directive(text=PARIS, chunk=4, interval=0.3),
                                response_format={"type": "json_object"})
    assert time.monotonic() - started > 2  # 10 events 0.3 s apart; the proxy's keep-alive is 1 s
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert ": keep-alive" in body
    frames = sse_frames(body)
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert body.index(": keep-alive") > body.index('"role":"assistant"')  # the role went out at once
    content = [c["choices"][0]["delta"].get("content") for c in chunks[1:] if c["choices"][0]["delta"]]
    assert content == [PARIS]  # held, then sent whole
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_client_that_leaves_while_the_json_is_held_closes_the_upstream_reply(proxy, emulator):
    key = f"rt-leave-{uuid.uuid4().hex[:8]}"
    text = json.dumps({"story": "x" * 60})  # about 80 events 0.2 s apart: text keeps coming, no idle tick
    response = requests.post(
        proxy.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, stream=True, timeout=30,
        json={"model": "gpt-4o", "stream": True, "response_format": {"type": "json_object"},
              "messages": [{"role": "user", "content": directive(text=text, chunk=1, interval=0.2)}]})
    first = next(response.iter_lines())
    assert b'"role":"assistant"' in first
    left = time.time()
    response.close()

    def mine():
        return [s for s in emulator.streams() if s.get("subject") == key]

    wait_until(lambda: mine() and mine()[0]["ended"], timeout=10, what="the upstream reply closed")
    assert mine()[0]["outcome"] == "client_closed"
    assert mine()[0]["ended"] - left < 5  # noticed by a failed keep-alive write, not at the reply's end


def test_thinking_streams_while_the_json_is_held(proxy):
    chunks = list(ask(proxy, directive(emu="agent", think=True), response_format={"type": "json_object"},
                      stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = [i for i, d in enumerate(deltas) if getattr(d, "reasoning_content", None)]
    content = [i for i, d in enumerate(deltas) if d.content]
    assert reasoning and content and max(reasoning) < min(content)
    assert json.loads("".join(deltas[i].content for i in content))["echo"]


def test_bad_response_formats_are_400s_and_reach_no_upstream(proxy, emulator):
    for response_format, param in [({"type": "yaml"}, "response_format.type"),
                                   ({"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": 5}}},
                                    "response_format.json_schema.schema")]:
        error, posts = posts_during(emulator, lambda: ask(proxy, "hi", response_format=response_format))
        assert isinstance(error, openai.BadRequestError) and error.body["param"] == param
        assert posts == []


@pytest.fixture(scope="module")
def hiding_proxy(start_proxy):
    return start_proxy({"NEED_DELETE_CONVERSATION_AFTER_RESPONSE": "true"})


@pytest.mark.parametrize("stream", [False, True])
def test_every_conversation_of_a_retry_is_hidden(hiding_proxy, emulator, stream):
    before = len(emulator.requests())
    content = directive(emu="agent", always_bad=True)
    if stream:
        response, body = raw_stream(hiding_proxy, content, response_format=WEATHER_FORMAT)
        assert response.status_code == 200 and "invalid_json_output" in body
    else:
        with pytest.raises(openai.APIStatusError) as caught:
            ask(hiding_proxy, content, response_format=WEATHER_FORMAT)
        assert caught.value.status_code == 502
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        hides = [r for r in emulator.requests()[before:] if r["method"] == "PATCH"]
        if len(hides) == 2:
            break
        time.sleep(0.1)
    ids = {r["path"].rsplit("/", 1)[1] for r in hides}
    assert len(hides) == 2 and len(ids) == 2


# --- LangChain --------------------------------------------------------------------------------

def langchain_model(proxy):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="gpt-4o", base_url=proxy.url + "/v1", api_key="rt-langchain", max_retries=0, timeout=30)


def test_langchain_with_structured_output_default_method(proxy):
    structured = langchain_model(proxy).with_structured_output(Weather)
    assert structured.invoke(directive(text=PARIS)) == Weather(city="Paris", temperature=21.5)


def test_langchain_with_structured_output_json_mode(proxy):
    structured = langchain_model(proxy).with_structured_output(Weather, method="json_mode")
    assert structured.invoke(directive(text=f"```json\n{PARIS}\n```")) == Weather(city="Paris", temperature=21.5)
