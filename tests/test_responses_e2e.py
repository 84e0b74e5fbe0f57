"""The Responses API end to end: the openai SDK's responses.create / responses.stream against the
proxy and the emulated upstream (whose model follows the tool / response-format protocol)."""
from __future__ import annotations

import json
import time
from typing import List

import openai
import pydantic
import pytest
import requests
from openai.types.responses import Response, ResponseStreamEvent

from .conftest import directive

EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather of a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def turns(emulator, index: int = -1) -> List[tuple]:
    """(role, text) of the upstream messages of a conversation the emulator received."""
    payload = emulator.conversations()[index]["json"]
    return [(m["author"]["role"], "\n".join(p for p in m["content"]["parts"] if isinstance(p, str)))
            for m in payload["messages"]]


def raw_events(proxy, body: dict, key: str = "rt-resp") -> List[dict]:
    """The SSE events of a streamed response, each checked against the SDK's event union."""
    response = requests.post(proxy.url + "/v1/responses", json={**body, "stream": True}, timeout=30,
                             headers={"Authorization": f"Bearer {key}"}, stream=True)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events, name = [], None
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            event = json.loads(line[6:])
            assert event["type"] == name  # the SSE event line names the same type
            EVENTS.validate_python(event)
            events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def test_string_input_answers_one_message(proxy, emulator):
    response = proxy.client("rt-resp").responses.create(model="gpt-4o", input="Hello there")
    assert response.output_text == "Echo: Hello there"
    assert response.status == "completed" and response.object == "response"
    assert response.id.startswith("resp_")
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.id.startswith("msg_") and message.content[0].annotations == []
    usage = response.usage
    assert usage.output_tokens > 0 and usage.input_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert turns(emulator) == [("user", "Hello there")]


def test_the_raw_response_is_a_valid_sdk_response(proxy):
    raw = requests.post(proxy.url + "/v1/responses", headers={"Authorization": "Bearer rt-resp"}, timeout=30,
                        json={"model": "gpt-4o", "input": "hi", "metadata": {"k": "v"}, "temperature": 0.5}).json()
    Response.model_validate(raw)  # every required field there, with the right types
    assert raw["metadata"] == {"k": "v"} and raw["temperature"] == 0.5
    assert raw["tools"] == [] and raw["tool_choice"] == "auto" and raw["store"] is True
    assert raw["text"] == {"format": {"type": "text"}}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    raw = requests.post(proxy.url + "/v1/responses", headers={"Authorization": "Bearer rt-resp"}, timeout=30, json={
        "model": "o3", "input": "count", "tools": [WEATHER], "reasoning": {"effort": "low", "summary": "auto"},
        "tool_choice": {"type": "function", "name": "get_weather"}, "parallel_tool_calls": False,
        "text": {"format": {"type": "json_schema", "name": "count", "schema": schema, "strict": True}},
        "include": ["reasoning.encrypted_content"], "truncation": "auto", "user": "u1"}).json()
    echoed = Response.model_validate(raw)
    assert echoed.tool_choice.name == "get_weather" and echoed.parallel_tool_calls is False
    assert echoed.tools[0].parameters == WEATHER["parameters"] and echoed.text.format.name == "count"
    assert echoed.reasoning.effort == "low" and echoed.output[0].type == "function_call"


def test_items_and_instructions_become_the_conversation(proxy, emulator):
    response = proxy.client("rt-resp").responses.create(model="gpt-4o", instructions="Be brief.", input=[
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
        {"role": "user", "content": "How are you?"},
    ])
    assert response.output_text == "Echo: How are you?"
    assert response.instructions == "Be brief."
    assert turns(emulator) == [("system", "Be brief."), ("system", "Answer in English."), ("user", "Hi"),
                               ("assistant", "Hello!"), ("user", "How are you?")]


def test_streamed_events_follow_openais_sequence(proxy):
    events = raw_events(proxy, {"model": "gpt-4o", "input": directive(text="Streaming works fine.", chunk=4)})
    kinds = [e["type"] for e in events]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[4:4 + len(deltas)] == ["response.output_text.delta"] * len(deltas) and len(deltas) > 2
    assert kinds[4 + len(deltas):] == ["response.output_text.done", "response.content_part.done",
                                       "response.output_item.done", "response.completed"]
    assert "".join(d["delta"] for d in deltas) == "Streaming works fine."
    item_id = events[2]["item"]["id"]
    assert all(e["item_id"] == item_id and e["output_index"] == 0 and e["content_index"] == 0 for e in deltas)
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == "Streaming works fine."
    assert final["usage"]["output_tokens"] > 0


def test_sdk_stream_helpers(proxy):
    client = proxy.client("rt-resp")
    deltas = []
    with client.responses.stream(model="gpt-4o", input=directive(text="One, two, three.", chunk=3)) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == "One, two, three." == final.output_text
    assert final.status == "completed"
    created = client.responses.create(model="gpt-4o", input="streamed", stream=True)
    assert [e.type for e in created][-1] == "response.completed"


def test_function_tools_call_then_answer(proxy, emulator):
    client = proxy.client("rt-resp")
    first = client.responses.create(model="gpt-4o", input="Weather in Paris?", tools=[WEATHER])
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == {"city": "x"}  # the emulated model fills required strings with "x"
    assert call.call_id.startswith("call_") and call.id.startswith("fc_")
    assert first.output_text == "" and first.tools[0].name == "get_weather"
    assert "<tools>" in turns(emulator)[0][1]  # the protocol went upstream
    second = client.responses.create(model="gpt-4o", tools=[WEATHER], input=[
        {"role": "user", "content": "Weather in Paris?"},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
    ])
    assert second.output_text == "Done: sunny, 21 C"
    history = turns(emulator)
    assert history[-2][0] == "assistant" and '"name": "get_weather"' in history[-2][1]
    assert history[-1][0] == "user" and "<tool_response>" in history[-1][1] and call.call_id in history[-1][1]


def test_streamed_function_call_events(proxy):
    events = raw_events(proxy, {"model": "gpt-4o", "tools": [WEATHER], "input": directive(
        emu="agent", say="Let me check.", plan=[[{"name": "get_weather", "arguments": {"city": "Oslo"}},
                                                 {"name": "get_weather", "arguments": {"city": "Rome"}}]])})
    kinds = [e["type"] for e in events]
    assert kinds.count("response.function_call_arguments.done") == 2
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["message", "function_call", "function_call"]
    assert final["output"][0]["content"][0]["text"] == "Let me check."
    calls = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [json.loads(c["arguments"]) for c in calls] == [{"city": "Oslo"}, {"city": "Rome"}]
    assert [c["output_index"] for c in calls] == [1, 2]
    added = [e for e in events if e["type"] == "response.output_item.added" and e["item"]["type"] == "function_call"]
    assert [a["item"]["arguments"] for a in added] == ["", ""] and added[0]["item"]["status"] == "in_progress"
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert [d["item_id"] for d in deltas] == [a["item"]["id"] for a in added]


def test_previous_response_id_continues_the_conversation(proxy, emulator):
    client = proxy.client("rt-resp")
    first = client.responses.create(model="gpt-4o", instructions="Be brief.", input="My name is Ada.")
    second = client.responses.create(model="gpt-4o", previous_response_id=first.id, input="What is my name?")
    assert second.previous_response_id == first.id
    # the earlier turn's input and output went upstream again; its instructions did not (as at OpenAI)
    assert turns(emulator) == [("user", "My name is Ada."), ("assistant", "Echo: My name is Ada."),
                               ("user", "What is my name?")]
    third = client.responses.create(model="gpt-4o", previous_response_id=second.id, input="Again?", stream=True)
    assert [e.type for e in third][-1] == "response.completed"
    assert [text for _, text in turns(emulator)] == ["My name is Ada.", "Echo: My name is Ada.", "What is my name?",
                                                     "Echo: What is my name?", "Again?"]


def test_previous_response_id_with_function_call_output(proxy):
    client = proxy.client("rt-resp")
    first = client.responses.create(model="gpt-4o", input="Weather?", tools=[WEATHER])
    call = first.output[0]
    second = client.responses.create(model="gpt-4o", tools=[WEATHER], previous_response_id=first.id, input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "rain"}])
    assert second.output_text == "Done: rain"


def test_get_and_delete_are_per_caller(proxy):
    client = proxy.client("rt-owner")
    created = client.responses.create(model="gpt-4o", input="keep me")
    fetched = client.responses.retrieve(created.id)
    assert fetched.model_dump() == created.model_dump()
    with pytest.raises(openai.NotFoundError):
        proxy.client("rt-stranger").responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        proxy.client("rt-stranger").responses.delete(created.id)
    with pytest.raises(openai.BadRequestError) as stranger:
        proxy.client("rt-stranger").responses.create(model="gpt-4o", input="x", previous_response_id=created.id)
    assert stranger.value.body["code"] == "previous_response_not_found"
    assert stranger.value.body["param"] == "previous_response_id"
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_store_false_keeps_nothing(proxy):
    client = proxy.client("rt-resp")
    created = client.responses.create(model="gpt-4o", input="forget me", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_stored_response_expires(start_proxy):
    proxy = start_proxy({"RESPONSES_TTL": "1"})
    client = proxy.client("rt-ttl")
    created = client.responses.create(model="gpt-4o", input="short-lived")
    assert client.responses.retrieve(created.id).id == created.id
    time.sleep(1.3)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_text_format_json_schema_with_parse(proxy, emulator):
    parsed = proxy.client("rt-resp").responses.parse(model="gpt-4o", input="Invent a person.", text_format=Person)
    assert isinstance(parsed.output_parsed, Person)
    assert parsed.text.format.type == "json_schema" and parsed.text.format.name == "Person"
    assert "# Response format" in turns(emulator)[0][1] and "<json_schema>" in turns(emulator)[0][1]


@pytest.mark.parametrize("stream", [False, True])
def test_text_format_fenced_reply_is_unwrapped(proxy, stream):
    body = {"model": "gpt-4o", "input": directive(emu="agent", fence=True),
            "text": {"format": {"type": "json_object"}}}
    if stream:
        events = raw_events(proxy, body)
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    else:
        text = proxy.client("rt-resp").responses.create(**body).output_text
    assert isinstance(json.loads(text), dict) and not text.startswith("```")


def test_text_format_mismatch_is_retried_once(proxy, emulator):
    before = len(emulator.conversations())
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
              "additionalProperties": False}
    response = proxy.client("rt-resp").responses.create(
        model="gpt-4o", input=directive(emu="agent", bad_first=True),
        text={"format": {"type": "json_schema", "name": "count", "schema": schema, "strict": True}})
    assert isinstance(json.loads(response.output_text)["n"], int)
    assert len(emulator.conversations()) == before + 2
    assert turns(emulator)[-1][1].startswith("Your previous reply was not valid:")


def test_text_format_always_wrong_ends_in_a_clear_error(proxy, emulator):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    body = {"model": "gpt-4o", "input": directive(emu="agent", always_bad=True),
            "text": {"format": {"type": "json_schema", "name": "count", "schema": schema}}}
    before = len(emulator.conversations())
    with pytest.raises(openai.APIStatusError) as failed:
        proxy.client("rt-resp").responses.create(**body)
    assert failed.value.status_code == 502 and "retry" in failed.value.message
    assert failed.value.body["param"] == "text.format" and failed.value.body["code"] == "invalid_json_output"
    assert "The model's last reply was:" in failed.value.message  # what it said is not lost
    assert len(emulator.conversations()) == before + 2  # one retry, no more
    events = raw_events(proxy, body)
    assert events[-1]["type"] == "response.failed"
    assert "retry" in events[-1]["response"]["error"]["message"]


def test_reasoning_effort_and_thinking_as_a_reasoning_item(proxy, emulator):
    from .emulator.scenarios import THOUGHTS

    thinking = "\n\n".join(f"{t['summary']}\n{t['content']}" for t in THOUGHTS)
    body = {"model": "o3", "reasoning": {"effort": "high"},
            "input": directive(emu="thinking", text="Hi!", chunk=5)}
    response = proxy.client("rt-resp").responses.create(**body)
    assert emulator.conversations()[-1]["json"]["thinking_effort"] == "max"
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == thinking
    assert message.content[0].text == "Hi!" == response.output_text
    assert response.usage.output_tokens_details.reasoning_tokens > 0
    assert response.reasoning.effort == "high"
    events = raw_events(proxy, body)
    kinds = [e["type"] for e in events]
    assert kinds[2:4] == ["response.output_item.added", "response.reasoning_summary_part.added"]
    summary = [e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta"]
    assert "".join(summary) == thinking and len(summary) > 1  # streamed as it came
    done = kinds.index("response.reasoning_summary_text.done")
    assert kinds[done:done + 3] == ["response.reasoning_summary_text.done", "response.reasoning_summary_part.done",
                                    "response.output_item.done"]
    assert kinds.index("response.output_text.delta") > done
    assert [e["output_index"] for e in events if e["type"] == "response.output_text.delta"][0] == 1


def test_max_output_tokens_cuts_the_reply(proxy):
    text = "one two three four five six seven eight nine ten eleven twelve"
    body = {"model": "gpt-4o", "max_output_tokens": 4, "input": directive(text=text, chunk=7)}
    response = proxy.client("rt-resp").responses.create(**body)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "one two three four"
    assert response.output[0].status == "incomplete"
    events = raw_events(proxy, body)
    assert events[-1]["type"] == "response.incomplete"
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "one two three four"


def test_upstream_failure_mid_stream_is_response_failed(proxy):
    events = raw_events(proxy, {"model": "gpt-4o", "input": directive(emu="error_midstream", text="Partial answer",
                                                                        chunk=4, after_chunks=2)})
    failed = events[-1]
    assert failed["type"] == "response.failed"
    assert "Something went wrong" in failed["response"]["error"]["message"]
    assert failed["response"]["output"][0]["content"][0]["text"] == "Partial "  # what came is kept
    assert failed["response"]["output"][0]["status"] == "incomplete"


@pytest.mark.parametrize("scenario", ["drop", "error_midstream"])
def test_a_reply_cut_inside_a_call_is_not_made_a_call(proxy, scenario):
    """The part of the call that came would parse (missing braces are a known repair), but the reply
    failed: it is kept as text in the failed response, never made a call whose arguments may be cut."""
    sent = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"'
    text = sent + ', "unit": "c"}}\n</tool_call>'
    events = raw_events(proxy, {"model": "gpt-4o", "tools": [WEATHER], "input": directive(
        emu=scenario, text=text, chunk=len(sent), after_chunks=1)})
    failed = events[-1]
    assert failed["type"] == "response.failed"
    assert not any(item["type"] == "function_call" for item in failed["response"]["output"])
    assert not any(event["type"].startswith("response.function_call") for event in events)
    [message] = failed["response"]["output"]
    assert message["content"][0]["text"] == sent


@pytest.mark.parametrize("body, param", [
    ({"model": "gpt-4o"}, "input"),
    ({"input": "hi"}, "model"),
    ({"model": "gpt-4o", "input": 5}, "input"),
    ({"model": "gpt-4o", "input": []}, "input"),
    ({"model": "gpt-4o", "input": [{"type": "reasoning", "summary": []}], "instructions": "x"}, "input"),
    ({"model": "gpt-4o", "input": [{"type": "computer_call"}]}, "input[0].type"),
    ({"model": "gpt-4o", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "gpt-4o", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "input[0].content[0].type"),
    ({"model": "gpt-4o", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].file_id"),
    ({"model": "gpt-4o", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
     "input[0].call_id"),
    ({"model": "gpt-4o", "input": [{"type": "function_call_output", "call_id": "c", "output": 3}]},
     "input[0].output"),
    ({"model": "gpt-4o", "input": "hi", "tools": [{"type": "file_search"}]}, "tools[0].type"),
    ({"model": "gpt-4o", "input": "hi", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}},
     "tool_choice"),
    ({"model": "gpt-4o", "input": "hi", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"model": "gpt-4o", "input": "hi", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
    ({"model": "gpt-4o", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "gpt-4o", "input": "hi", "stream": "yes"}, "stream"),
    ({"model": "gpt-4o", "input": "hi", "conversation": "conv_1"}, "conversation"),
    ({"model": "gpt-4o", "input": "hi", "background": True}, "background"),
    ({"model": "gpt-4o", "input": "hi", "previous_response_id": "resp_unknown"}, "previous_response_id"),
])
def test_bad_requests_are_400_naming_the_param(proxy, emulator, body, param):
    before = len(emulator.conversations())
    response = requests.post(proxy.url + "/v1/responses", json=body, timeout=30,
                             headers={"Authorization": "Bearer rt-resp"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
    assert len(emulator.conversations()) == before  # nothing went upstream


def test_missing_key_is_401(proxy):
    for method, path in (("post", "/v1/responses"), ("get", "/v1/responses/resp_x"),
                         ("delete", "/v1/responses/resp_x"), ("get", "/v1/responses/resp_x/input_items")):
        response = requests.request(method, proxy.url + path, json={"model": "gpt-4o", "input": "x"}, timeout=30)
        assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


def test_input_image_and_input_file_go_up_as_chat_files_do(proxy, emulator):
    from .test_uploads_e2e import data_uri, png_bytes

    response = proxy.client("rt-resp-files").responses.create(model="gpt-4o", input=[{"role": "user", "content": [
        {"type": "input_text", "text": directive(emu="inputs")},
        {"type": "input_image", "image_url": data_uri(png_bytes(), "image/png"), "detail": "low"},
        {"type": "input_file", "file_url": emulator.url + "/_emulator/asset/paper.pdf"},
    ]}])
    seen = json.loads(response.output_text)
    assert seen["content_type"] == "multimodal_text"
    assert seen["parts"][1]["content_type"] == "image_asset_pointer"
    assert [a["mimeType"] for a in seen["attachments"]] == ["image/png", "application/pdf"]
    assert response.usage.input_tokens > 2 * 85  # each file counts a flat estimate


def test_keep_alives_while_the_upstream_is_silent_and_a_leaving_client_closes_it(proxy, emulator):
    from .test_upstream_failures_e2e import ended_hang_stream

    body = {"model": "gpt-4o", "stream": True,
            "input": directive(emu="hang", text="abcdefghi", chunk=3, after_chunks=1, hang=2.5)}
    response = requests.post(proxy.url + "/v1/responses", json=body, timeout=30,
                             headers={"Authorization": "Bearer rt-resp"})
    assert response.text.count(": keep-alive") >= 1 and '"type":"response.completed"' in response.text
    asked_at = time.time()
    body["input"] = directive(emu="hang", text="abcdefghijkl", after_chunks=2, hang=30)
    response = requests.post(proxy.url + "/v1/responses", json=body, timeout=30, stream=True,
                             headers={"Authorization": "Bearer rt-resp"})
    for line in response.iter_lines():
        if b'"delta":"abc' in line:
            break
    closed_at = time.time()
    response.close()
    record = ended_hang_stream(emulator, asked_at)
    assert record["closed_early"] is True and record["ended"] - closed_at < 3.0


def test_non_stream_failures_are_http_errors(proxy):
    client = proxy.client("rt-resp")
    with pytest.raises(openai.APIStatusError) as midstream:
        client.responses.create(model="gpt-4o", input=directive(emu="error_midstream"))
    assert midstream.value.status_code == 502
    with pytest.raises(openai.APIStatusError) as refused:
        client.responses.create(model="gpt-4o", input=directive(emu="http_error", status=429,
                                                                body={"detail": "slow down"}))
    assert refused.value.status_code == 429


def test_with_the_services_own_keys_responses_belong_to_each_key(start_proxy):
    proxy = start_proxy({"API_KEYS": "sk-resp-one,sk-resp-two", "TOKEN_POOL": "rt-resp-pool"})
    created = proxy.client("sk-resp-one").responses.create(model="gpt-4o", input="pooled")
    assert created.output_text == "Echo: pooled"
    assert proxy.client("sk-resp-one").responses.retrieve(created.id).id == created.id
    with pytest.raises(openai.NotFoundError):
        proxy.client("sk-resp-two").responses.retrieve(created.id)
    with pytest.raises(openai.AuthenticationError):
        proxy.client("sk-not-ours").responses.retrieve(created.id)


def test_sdk_stream_helper_with_a_function_tool(proxy):
    client = proxy.client("rt-resp")
    plan = [[{"name": "get_weather", "arguments": {"city": "Lima"}}]]
    with client.responses.stream(model="gpt-4o", tools=[WEATHER], input=directive(emu="agent", plan=plan)) as stream:
        argument_deltas = [event.delta for event in stream if event.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    [call] = final.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Lima"}
    assert "".join(argument_deltas) == call.arguments


def test_langchain_on_the_responses_api(proxy):
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """Current weather of a city."""
        return f"sunny in {city}"

    llm = ChatOpenAI(model="gpt-4o", base_url=proxy.url + "/v1", api_key="rt-resp-lc", use_responses_api=True,
                     max_retries=0, timeout=30)
    reply = llm.bind_tools([get_weather]).invoke("Weather in Quito?")
    [call] = reply.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "x"}
    answer = llm.invoke("Just say hi")
    assert answer.text == "Echo: Just say hi"


def test_a_failure_mid_reply_keeps_held_text_in_the_failed_response(proxy):
    # With tools offered, "<tool_c" is held back (it may open a call); with text.format, all text is
    # held for the check. A reply that fails midway still shows what the model said.
    body = {"model": "gpt-4o", "tools": [WEATHER],
            "input": directive(emu="error_midstream", text="Let me see <tool_call", chunk=4, after_chunks=4)}
    failed = raw_events(proxy, body)[-1]
    assert failed["type"] == "response.failed"
    assert failed["response"]["output"][0]["content"][0]["text"] == "Let me see <tool"
    body = {"model": "gpt-4o", "text": {"format": {"type": "json_object"}},
            "input": directive(emu="error_midstream", text='{"partial": tr', chunk=4, after_chunks=2)}
    failed = raw_events(proxy, body)[-1]
    assert failed["type"] == "response.failed"
    assert failed["response"]["output"][0]["content"][0]["text"] == '{"partia'


def test_input_tokens_count_the_tools_block_and_the_format_instruction(proxy):
    """Usage counts what the upstream reads: the tools protocol and the format instruction are
    prompt too (the first version counted the client's messages only)."""
    client = proxy.client("rt-resp")
    question = '{"emu": "text", "text": "Fine."}'
    plain = client.responses.create(model="gpt-4o", input=question)
    tool = {"type": "function", "name": "get_weather", "description": "Current weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    with_tools = client.responses.create(model="gpt-4o", input=question, tools=[tool])
    with_format = client.responses.create(model="gpt-4o", input='{"emu": "text", "text": "{\\"a\\": 1}"}',
                                          text={"format": {"type": "json_object"}})
    assert with_tools.usage.input_tokens - plain.usage.input_tokens > 100
    assert with_format.usage.input_tokens - plain.usage.input_tokens > 20
