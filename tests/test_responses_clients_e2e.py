"""The Responses API as agent clients use it: Codex-style stateless bodies (store false, the whole
history with reasoning / ids / statuses sent back), hosted and custom tools, the input_items list,
the SDK's stream accumulator against the non-stream answer, and an Agents SDK loop chained by
previous_response_id only. Against the emulated upstream (its model follows the tool protocol)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, List

import agents
import httpx
import openai
import pydantic
import pytest
import requests
from openai.types.responses import Response, ResponseItem, ResponseStreamEvent

from .conftest import directive
from .test_responses_e2e import WEATHER, raw_events, turns

EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)
ITEMS = pydantic.TypeAdapter(ResponseItem)
PATCH = {"type": "custom", "name": "apply_patch", "description": "Apply a patch to the files.",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/s"}}
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/"
       "PchI7wAAAABJRU5ErkJggg==")


def post(proxy, body: dict, key: str = "rt-clients") -> requests.Response:
    return requests.post(proxy.url + "/v1/responses", json=body, timeout=30,
                         headers={"Authorization": f"Bearer {key}"})


def codex_turn(history: List[dict], **extra: Any) -> dict:
    """A body as Codex sends it: stateless, encrypted reasoning asked for, cache and tier hints."""
    return {"model": "gpt-5", "instructions": "You are a coding agent.", "input": history, "tools": [WEATHER, PATCH],
            "tool_choice": "auto", "parallel_tool_calls": False, "reasoning": {"effort": "medium", "summary": "auto"},
            "store": False, "stream": False, "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "c0ffee", "service_tier": "auto", "truncation": "disabled", "user": "dev-1",
            "metadata": {"session": "s1"}, "top_logprobs": 0, "stream_options": {"include_obfuscation": False},
            **extra}


def test_codex_style_stateless_history(proxy, emulator):
    """The whole history resent with ids, statuses, encrypted reasoning and a tool output made of
    text parts: accepted, rebuilt upstream in order, the opaque reasoning not resent."""
    history = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-opaque"},
        {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}]},
        {"type": "function_call", "id": "fc_1", "status": "completed", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "call_1",
         "output": [{"type": "input_text", "text": "cold, "}, {"type": "input_text", "text": "2 C"}]},
    ]
    answer = post(proxy, codex_turn(history))
    assert answer.status_code == 200, answer.text
    response = Response.model_validate(answer.json())
    assert response.output_text == "Done: cold, 2 C" and response.store is False
    assert (response.prompt_cache_key, response.user, response.metadata) == ("c0ffee", "dev-1", {"session": "s1"})
    assert [tool.type for tool in response.tools] == ["function", "custom"]
    roles = [role for role, _ in turns(emulator)]
    assert roles == ["system", "system", "user", "assistant", "user"]  # protocol, instructions, ...
    said = turns(emulator)[3][1]
    assert said.startswith("Checking.\n<tool_call>") and '"city": "Oslo"' in said
    assert "gAAAA" not in json.dumps(emulator.conversations()[-1]["json"])
    assert '"content": "cold, 2 C"' in turns(emulator)[4][1]
    assert post(proxy, {"model": "gpt-5", "input": "x"}).json()["service_tier"] == "default"


def test_an_image_a_tool_returned_follows_the_results(proxy, emulator):
    """The protocol's results are text: a tool's image goes up attached to one user message right
    after them, naming the call (never dropped)."""
    history = [{"role": "user", "content": "Show me the chart."},
               {"type": "function_call", "call_id": "call_9", "name": "get_weather", "arguments": "{}"},
               {"type": "function_call_output", "call_id": "call_9",
                "output": [{"type": "input_text", "text": "chart attached"},
                           {"type": "input_image", "image_url": PNG, "detail": "low"}]}]
    answer = post(proxy, codex_turn(history, tools=[WEATHER]))
    assert answer.status_code == 200, answer.text
    messages = emulator.conversations()[-1]["json"]["messages"]
    assert '"content": "chart attached"' in messages[-2]["content"]["parts"][0]
    last = messages[-1]["content"]
    assert last["content_type"] == "multimodal_text"
    assert "The tools returned these files:" in last["parts"] and "(returned by the tool call call_9)" in last["parts"]
    assert any(isinstance(part, dict) and part.get("asset_pointer") for part in last["parts"])


def test_stateless_round_trip_of_our_own_output(proxy):
    """A call item exactly as we returned it (ids, status) goes back as input unchanged."""
    first = post(proxy, codex_turn([{"role": "user", "content": "Weather?"}], tools=[WEATHER])).json()
    [call] = first["output"]
    again = post(proxy, codex_turn([{"role": "user", "content": "Weather?"}, call,
                                    {"type": "function_call_output", "call_id": call["call_id"], "output": "fine"}],
                                   tools=[WEATHER]))
    assert again.status_code == 200 and Response.model_validate(again.json()).output_text == "Done: fine"


def test_native_tools_are_left_to_the_web_model(proxy, emulator):
    """web_search & co. are accepted and echoed, never put in the protocol (the web model has them)."""
    body = {"model": "gpt-4o", "input": "What happened today?",
            "tools": [{"type": "web_search_preview"}, {"type": "code_interpreter", "container": {"type": "auto"}},
                      {"type": "image_generation"}], "tool_choice": {"type": "web_search_preview"}}
    answer = post(proxy, body)
    assert answer.status_code == 200, answer.text
    response = Response.model_validate(answer.json())
    assert response.output_text == "Echo: What happened today?"
    assert [tool.type for tool in response.tools] == ["web_search_preview", "code_interpreter", "image_generation"]
    assert response.tool_choice.type == "web_search_preview"
    assert turns(emulator) == [("user", "What happened today?")]  # no protocol: nothing to call
    mixed = post(proxy, {**body, "tools": [{"type": "web_search"}, WEATHER], "tool_choice": "required"}).json()
    assert [item["type"] for item in mixed["output"]] == ["function_call"]
    assert "<tools>" in turns(emulator)[0][1] and "web_search" not in turns(emulator)[0][1]


def test_required_with_only_native_tools_is_left_to_the_web_model(proxy, emulator):
    answer = post(proxy, {"model": "gpt-4o", "input": "Search the news.", "tools": [{"type": "web_search"}],
                          "tool_choice": "required"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["tool_choice"] == "required" and turns(emulator) == [("user", "Search the news.")]


def test_allowed_tools_narrow_what_is_offered(proxy, emulator):
    other = {**WEATHER, "name": "get_time", "description": "The time."}
    choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_time"}]}
    answer = post(proxy, {"model": "gpt-4o", "input": "Time?", "tools": [WEATHER, other], "tool_choice": choice})
    assert answer.status_code == 200, answer.text
    response = Response.model_validate(answer.json())
    assert response.tool_choice.type == "allowed_tools" and [tool.name for tool in response.tools] == [
        "get_weather", "get_time"]
    assert [(item.type, item.name) for item in response.output] == [("function_call", "get_time")]
    protocol = turns(emulator)[0][1]
    assert '"name": "get_time"' in protocol and "get_weather" not in protocol
    assert "You must call at least one function in this reply." in protocol
    for bad in ({**choice, "mode": "sometimes"}, {**choice, "tools": [{"type": "function", "name": "nope"}]}):
        refused = post(proxy, {"model": "gpt-4o", "input": "Time?", "tools": [WEATHER, other], "tool_choice": bad})
        assert refused.status_code == 400 and refused.json()["error"]["param"].startswith("tool_choice")


@pytest.mark.parametrize("tool", [{"type": "file_search", "vector_store_ids": ["vs_1"]},
                                  {"type": "computer_use_preview", "display_width": 1, "display_height": 1,
                                   "environment": "linux"},
                                  {"type": "mcp", "server_label": "x", "server_url": "https://x"},
                                  {"type": "local_shell"}])
def test_tools_we_cannot_honour_are_400_naming_the_type(proxy, emulator, tool):
    before = len(emulator.conversations())
    answer = post(proxy, {"model": "gpt-4o", "input": "hi", "tools": [WEATHER, tool]})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "tools[1].type" and repr(tool["type"]) in error["message"]
    assert len(emulator.conversations()) == before


def test_custom_tool_call_and_its_output(proxy, emulator):
    """A freeform tool (Codex's apply_patch) through the protocol: its call is a custom_tool_call
    with the raw input, streamed with the custom input events; its output goes back as a result."""
    patch = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch"
    plan = directive(emu="agent", plan=[[{"name": "apply_patch", "arguments": {"input": patch}}]], chunk=4)
    client = proxy.client("rt-clients")
    first = client.responses.create(model="gpt-5", input=plan, tools=[PATCH])
    [call] = first.output
    assert call.type == "custom_tool_call" and call.name == "apply_patch" and call.input == patch
    protocol = turns(emulator)[0][1]
    assert '"name": "apply_patch"' in protocol and "start: /.+/s" in protocol  # the grammar is told
    events = raw_events(proxy, {"model": "gpt-5", "input": plan, "tools": [PATCH]})
    kinds = [event["type"] for event in events]
    assert kinds[2:6] == ["response.output_item.added", "response.custom_tool_call_input.delta",
                          "response.custom_tool_call_input.done", "response.output_item.done"]
    assert events[2]["item"]["input"] == "" and events[4]["input"] == patch == events[5]["item"]["input"]
    second = client.responses.create(model="gpt-5", previous_response_id=first.id, tools=[PATCH], input=[
        {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"}])
    assert second.output_text == "Done: Done!"
    said = [text for role, text in turns(emulator) if role == "assistant"]
    assert json.dumps(patch) in said[0]  # the call went back as the protocol's {"input": ...}
    stateless = client.responses.create(model="gpt-5", tools=[PATCH], store=False, input=[
        {"role": "user", "content": plan}, call.model_dump(exclude_none=True),
        {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "ok"}])
    assert stateless.output_text == "Done: ok"


def test_forced_custom_tool_choice(proxy, emulator):
    response = post(proxy, {"model": "gpt-5", "input": "patch it", "tools": [WEATHER, PATCH],
                            "tool_choice": {"type": "custom", "name": "apply_patch"}}).json()
    assert response["tool_choice"] == {"type": "custom", "name": "apply_patch"}
    assert [item["type"] for item in response["output"]] == ["custom_tool_call"]
    assert "You must call the function `apply_patch`" in turns(emulator)[0][1]


def test_input_items_list(proxy):
    client = proxy.client("rt-clients")
    first = client.responses.create(model="gpt-4o", input=[{"role": "user", "content": "one"},
                                                           {"role": "user", "content": "two"}])
    second = client.responses.create(model="gpt-4o", previous_response_id=first.id, input="three")
    page = requests.get(f"{proxy.url}/v1/responses/{second.id}/input_items", timeout=30,
                        headers={"Authorization": "Bearer rt-clients"}).json()
    assert page["object"] == "list" and page["has_more"] is False
    texts = [item["content"][0]["text"] for item in page["data"]]
    assert texts == ["three", "Echo: two", "two", "one"]  # newest first, the earlier turn's answer included
    assert (page["first_id"], page["last_id"]) == (page["data"][0]["id"], page["data"][-1]["id"])
    for item in page["data"]:
        ITEMS.validate_python(item)
    assert page["data"][1]["id"] == first.output[0].id  # our own items keep their ids
    listed = client.responses.input_items.list(second.id, order="asc", limit=2)
    assert [item.content[0].text for item in listed.data] == ["one", "two"] and listed.has_more
    assert [item.content[0].text for item in listed.iter_pages().__next__().data] == ["one", "two"]
    every = [item.content[0].text for item in client.responses.input_items.list(second.id, order="asc", limit=1)]
    assert every == ["one", "two", "Echo: two", "three"]  # the SDK's auto-paging follows `after`
    again = client.responses.input_items.list(second.id, order="asc", limit=1)
    assert again.data[0].id == listed.data[0].id  # ids are stable between calls


@pytest.mark.parametrize("query, param", [("order=up", "order"), ("limit=0", "limit"), ("limit=101", "limit"),
                                          ("limit=x", "limit"), ("after=msg_nope", "after")])
def test_input_items_bad_queries(proxy, query, param):
    created = post(proxy, {"model": "gpt-4o", "input": "hi"}).json()
    answer = requests.get(f"{proxy.url}/v1/responses/{created['id']}/input_items?{query}", timeout=30,
                          headers={"Authorization": "Bearer rt-clients"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param


def test_input_items_belong_to_their_key(proxy):
    created = post(proxy, {"model": "gpt-4o", "input": "hi"}).json()
    url = f"{proxy.url}/v1/responses/{created['id']}/input_items"
    assert requests.get(url, timeout=30, headers={"Authorization": "Bearer rt-clients"}).status_code == 200
    answer = requests.get(url, timeout=30, headers={"Authorization": "Bearer rt-someone-else"})
    assert answer.status_code == 404 and answer.json()["error"]["type"] == "invalid_request_error"
    unstored = post(proxy, {"model": "gpt-4o", "input": "hi", "store": False}).json()
    answer = requests.get(f"{proxy.url}/v1/responses/{unstored['id']}/input_items", timeout=30,
                          headers={"Authorization": "Bearer rt-clients"})
    assert answer.status_code == 404


def _shape(value: Any) -> Any:
    """A response without what differs between two runs (ids, times)."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()
                if key not in ("id", "call_id", "created_at", "completed_at", "item_id", "parsed", "parsed_arguments")}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return value


DELTAS = {"response.output_text.delta": ".done", "response.function_call_arguments.delta": ".done",
          "response.custom_tool_call_input.delta": ".done", "response.reasoning_summary_text.delta": ".done"}
DONE_FIELDS = ("text", "arguments", "input")


def _from_deltas(events: List[dict]) -> List[str]:
    """Each output item's text as its deltas build it, checked against its .done event."""
    built: dict = {}
    for event in events:
        if event["type"] in DELTAS:
            built[event["output_index"]] = built.get(event["output_index"], "") + event["delta"]
        elif event["type"].replace(".done", ".delta") in DELTAS:
            done = next(event[key] for key in DONE_FIELDS if key in event)
            assert done == built[event["output_index"]], event["type"]
    return [built[index] for index in sorted(built)]


def _item_texts(output: Any) -> List[str]:
    if isinstance(output, dict):
        output = output["output"]
    texts = []
    for item in output:
        if item["type"] == "message":
            texts.append("".join(part["text"] for part in item["content"]))
        elif item["type"] == "reasoning":
            texts.append("".join(part["text"] for part in item["summary"]))
        else:
            texts.append(item.get("arguments", item.get("input")))
    return texts


@pytest.mark.parametrize("body", [
    {"model": "gpt-4o", "input": directive(text="Plain text, streamed in bits.", chunk=3)},
    {"model": "gpt-4o", "tools": [WEATHER, PATCH], "input": directive(emu="agent", chunk=2, say="Let me look.", plan=[[
        {"name": "get_weather", "arguments": {"city": "Rome"}},
        {"name": "apply_patch", "arguments": {"input": "x"}}]])},
    {"model": "o3", "reasoning": {"effort": "high"}, "input": directive(emu="thinking", text="Hi!", chunk=5)},
], ids=["text", "tools", "reasoning"])
def test_sdk_stream_accumulator_rebuilds_the_non_stream_response(proxy, body):
    """Every event fits the SDK's union, and responses.stream()'s accumulator ends with the very
    response the non-stream call returns (and the response.completed event carries)."""
    client = proxy.client("rt-clients")
    whole = client.responses.create(**body)
    with client.responses.stream(**body) as stream:
        for event in stream:
            EVENTS.validate_python(event.model_dump(warnings=False))
        final = stream.get_final_response()
    assert _shape(final.model_dump(warnings=False)) == _shape(whole.model_dump(warnings=False))
    assert len(final.output) == len(whole.output) >= 1
    events = raw_events(proxy, body)
    added = [event["item"] for event in events if event["type"] == "response.output_item.added"]
    done = [event["item"] for event in events if event["type"] == "response.output_item.done"]
    assert [item.get("status") for item in added] == [None if i["type"] in ("reasoning", "custom_tool_call")
                                                      else "in_progress" for i in added]
    assert _shape(done) == _shape(events[-1]["response"]["output"])
    assert _from_deltas(events) == _item_texts(events[-1]["response"]["output"]) == _item_texts(whole.model_dump())
    assert events[0]["response"]["status"] == "in_progress" and events[1]["type"] == "response.in_progress"


async def _run_agent(agent, prompt: str, streamed: bool):
    if not streamed:
        return (await agents.Runner.run(agent, prompt, auto_previous_response_id=True)).final_output
    run = agents.Runner.run_streamed(agent, prompt, auto_previous_response_id=True)
    async for _ in run.stream_events():
        pass
    return run.final_output


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_agents_sdk_loop_by_previous_response_id_only(proxy, emulator, streamed):
    """auto_previous_response_id: each turn sends only its new items; the proxy's store rebuilds
    the conversation, so the model still sees both rounds of calls and results."""
    agents.set_tracing_disabled(True)  # no internet: the SDK would export traces to OpenAI
    sent: List[dict] = []

    async def record(request: httpx.Request) -> None:
        if request.method == "POST":
            sent.append(json.loads(request.content))

    @agents.function_tool
    def city_of(person: str) -> str:
        """The city a person lives in."""
        return "Paris"

    @agents.function_tool
    def weather_in(city: str) -> str:
        """Today's weather in a city."""
        return f"sunny in {city}"

    http = httpx.AsyncClient(event_hooks={"request": [record]})
    client = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="rt-chain", max_retries=0, timeout=30,
                                http_client=http)
    agent = agents.Agent(name="helper", instructions="Use the tools.", tools=[city_of, weather_in],
                         model=agents.OpenAIResponsesModel(model="gpt-4o", openai_client=client))
    plan = [[{"name": "city_of", "arguments": {"person": "Bea"}}], [{"name": "weather_in",
                                                                     "arguments": {"city": "Paris"}}]]
    final = asyncio.run(_run_agent(agent, directive(emu="agent", plan=plan, text="It is {results}.", chunk=3),
                                   streamed))
    assert final == "It is sunny in Paris."
    assert len(sent) == 3 and "previous_response_id" not in sent[0]
    assert all(body.get("stream", False) is streamed for body in sent)
    for body in sent[1:]:
        assert body["previous_response_id"] and [item["type"] for item in body["input"]] == ["function_call_output"]
    said = [text for role, text in turns(emulator) if role == "assistant"]
    assert len(said) == 2 and "city_of" in said[0] and "weather_in" in said[1]
    assert [role for role, text in turns(emulator) if "<tool_response>" in text] == ["user", "user"]


def test_the_readme_example_runs(proxy, capsys):
    readme = open(__file__.replace("tests/test_responses_clients_e2e.py", "README.md"), encoding="utf-8").read()
    section = readme[readme.index("### Responses API"):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("\n```\n")]
    code = code.replace('"http://localhost:33333/v1"', repr(proxy.url + "/v1"))
    exec(compile(code, "README.md", "exec"), {"REFRESH_TOKEN": "rt-readme"})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Done: 22 °C and sunny"
    assert out[1] == "Echo: Tell me a joke"
    assert out[2].startswith("ResponseUsage(") and "output_tokens=" in out[2]


class Person(pydantic.BaseModel):
    name: str
    age: int


def langchain_model(proxy, **options):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="gpt-4o", base_url=proxy.url + "/v1", api_key="rt-clients-lc", use_responses_api=True,
                      max_retries=0, timeout=30, **options)


@pytest.mark.parametrize("options", [{}, {"use_previous_response_id": True},
                                     {"streaming": True, "output_version": "responses/v1"}],
                         ids=["history", "previous_response_id", "streamed"])
def test_langchain_responses_tool_loop(proxy, emulator, options):
    """bind_tools on the Responses API: the call, the ToolMessage back, the answer from it."""
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Current weather of a city."""
        return f"sunny in {city}"

    sent: List[dict] = []
    http = httpx.Client(event_hooks={"request": [lambda request: sent.append(json.loads(request.content))]})
    llm = langchain_model(proxy, http_client=http, **options).bind_tools([get_weather])
    history = [HumanMessage(directive(emu="agent", plan=[[{"name": "get_weather", "arguments": {"city": "Lima"}}]],
                                      text="It is {results}.", chunk=3))]
    reply = llm.invoke(history)
    [call] = reply.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Lima"}
    history += [reply, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    answer = llm.invoke(history)
    assert answer.text == "It is sunny in Lima."
    assert [role for role, text in turns(emulator) if "<tool_response>" in text] == ["user"]
    assert [role for role, text in turns(emulator) if '<tool_call>\n{"name": "get_weather"' in text] == ["assistant"]
    chained = "use_previous_response_id" in options
    assert ("previous_response_id" in sent[1]) is chained  # only then is the call left out of the input
    assert [item.get("type") for item in sent[1]["input"]][-1] == "function_call_output"
    assert len(sent[1]["input"]) == (1 if chained else 3)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_responses_structured_output(proxy, method):
    structured = langchain_model(proxy).with_structured_output(Person, method=method)
    if method == "json_schema":
        result = structured.invoke("Invent a person.")  # the emulated model makes one from the schema
        assert result == Person(name="x", age=1)
    else:
        result = structured.invoke(directive(emu="agent", plan=[[{"name": "Person",
                                                                  "arguments": {"name": "Ida", "age": 7}}]]))
        assert result == Person(name="Ida", age=7)


class CityOf(pydantic.BaseModel):
    person: str


class WeatherIn(pydantic.BaseModel):
    city: str


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_sdk_responses_tool_runner(proxy, streamed):
    """The openai SDK's own agent loop (ResponsesToolRunner), which checks every item and event the
    server sends before it runs a tool: two rounds of calls, then the answer."""
    from openai.lib.responses_tool_runner import RegisteredFunction, ResponsesToolRunner

    ran = []

    def city_of(args: CityOf) -> str:
        ran.append(args)
        return "Oslo"

    def weather_in(args: WeatherIn) -> str:
        ran.append(args)
        return f"cold in {args.city}"

    runner = ResponsesToolRunner(functions=[
        RegisteredFunction.from_tool(openai.pydantic_responses_function_tool(CityOf), execute=city_of),
        RegisteredFunction.from_tool(openai.pydantic_responses_function_tool(WeatherIn), execute=weather_in)])
    plan = [[{"name": "CityOf", "arguments": {"person": "Al"}}], [{"name": "WeatherIn", "arguments": {"city": "Oslo"}}]]
    final = runner.run(proxy.client("rt-clients"), {"model": "gpt-4o", "input": directive(
        emu="agent", plan=plan, text="It is {results}.", chunk=3)}, stream=streamed, max_steps=5)
    assert final.output_text == "It is cold in Oslo."
    assert ran == [CityOf(person="Al"), WeatherIn(city="Oslo")]


def test_agents_sdk_structured_output_with_a_tool_and_web_search(proxy, emulator):
    """An agent with output_type, a function tool and the hosted WebSearchTool: the web search is
    the web model's own, the function is called, the final output parsed into the model."""
    agents.set_tracing_disabled(True)
    asked = []

    @agents.function_tool
    def age_of(person: str) -> int:
        """A person's age."""
        asked.append(person)
        return 33

    client = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="rt-clients", max_retries=0, timeout=30)
    agent = agents.Agent(name="typed", instructions="Answer with a person.", output_type=Person,
                         tools=[age_of, agents.WebSearchTool()],
                         model=agents.OpenAIResponsesModel(model="gpt-4o", openai_client=client))
    result = agents.Runner.run_sync(agent, directive(emu="agent", plan=[[{"name": "age_of",
                                                                          "arguments": {"person": "Al"}}]]))
    assert asked == ["Al"] and result.final_output == Person(name="x", age=1)  # an instance made from the schema
    system = [text for role, text in turns(emulator) if role == "system"]
    assert "# Response format" in "".join(system) and '"name": "age_of"' in system[0]
    assert "web_search" not in system[0]


def test_input_items_of_a_tool_round_fit_the_sdk_types(proxy):
    first = post(proxy, {"model": "gpt-5", "input": "go", "tools": [WEATHER, PATCH],
                         "tool_choice": "required"}).json()
    [call] = first["output"]
    second = post(proxy, {"model": "gpt-5", "previous_response_id": first["id"], "tools": [WEATHER, PATCH], "input": [
        {"type": "function_call_output", "call_id": call["call_id"], "output": [{"type": "input_text", "text": "ok"}]},
        {"type": "custom_tool_call", "call_id": "call_c", "name": "apply_patch", "input": "+x"},
        {"type": "custom_tool_call_output", "call_id": "call_c", "output": "patched"}]}).json()
    page = requests.get(f"{proxy.url}/v1/responses/{second['id']}/input_items?order=asc", timeout=30,
                        headers={"Authorization": "Bearer rt-clients"}).json()
    kinds = [item["type"] for item in page["data"]]
    assert kinds == ["message", "function_call", "function_call_output", "custom_tool_call", "custom_tool_call_output"]
    for item in page["data"]:
        assert type(ITEMS.validate_python(item)).__name__ != "dict"
    assert page["data"][1] == call  # our own output item, as we returned it
