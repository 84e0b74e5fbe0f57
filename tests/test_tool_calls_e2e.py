"""Tool calling on /v1/chat/completions end to end: real clients (openai SDK, its stream helper,
LangChain, raw SSE lines as NextChat reads them) -> proxy (gunicorn) -> the emulated model.

The model's exact text is either played raw (``{"emu": "text", "text": ...}``) or comes from the
emulator's protocol model (``{"emu": "agent", "plan": ...}``, tests/emulator/protocol_model.py),
which reads the proxy's tools block and the history's <tool_call>/<tool_response> blocks."""
from __future__ import annotations

import json
import time
from typing import List

import openai
import pytest
import requests
from pydantic import BaseModel

from .conftest import directive

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city"], "additionalProperties": False}}}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "description": "Time in a timezone",
                                              "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}
TOOLS = [WEATHER_TOOL, TIME_TOOL]


def block(name: str, arguments) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def ask(client, text: str, stream: bool = False, **kwargs):
    kwargs.setdefault("tools", TOOLS)
    return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}],
                                          stream=stream, **kwargs)


def payloads_since(emulator, since: float) -> List[dict]:
    """The conversation payloads the proxy posted upstream since ``since``."""
    return [r["json"] for r in emulator.conversations() if r["time"] >= since]


def upstream_texts(payload: dict) -> List[tuple]:
    return [(m["author"]["role"], m["content"]["parts"][0]) for m in payload["messages"]]


def assemble(chunks) -> dict:
    """A streamed reply put together as a client does, checking OpenAI's chunk rules on the way."""
    content, calls, finishes = [], {}, []
    for chunk in chunks:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        if choice.finish_reason:
            finishes.append(choice.finish_reason)
        delta = choice.delta
        content.append(delta.content or "")
        for call in delta.tool_calls or []:
            if call.index not in calls:  # the first chunk of a call: id, type, name, empty arguments
                assert call.id.startswith("call_") and call.type == "function"
                assert call.function.name and call.function.arguments == ""
                assert call.index == len(calls), "indexes count up from 0"
                calls[call.index] = {"id": call.id, "name": call.function.name, "arguments": ""}
            else:  # then only argument fragments
                assert call.id is None and call.type is None and call.function.name is None
                calls[call.index]["arguments"] += call.function.arguments
    assert len(finishes) == 1 and chunks[-1].choices[0].finish_reason == finishes[0]
    return {"content": "".join(content), "calls": [calls[i] for i in sorted(calls)], "finish": finishes[0]}


# --------------------------------------------------------------------------------------------------
# The openai SDK: create, stream and not
# --------------------------------------------------------------------------------------------------

def test_non_stream_call_keeps_the_text_before_it(proxy):
    text = "Let me look that up.\n" + block("get_weather", {"city": "Paris", "days": 2})
    reply = ask(proxy.client(), directive(text=text))
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look that up."
    [call] = choice.message.tool_calls
    assert call.id.startswith("call_") and len(call.id) == 29 and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 2}
    # The call is text the model wrote: it counts as completion tokens.
    assert reply.usage.completion_tokens > 20


@pytest.mark.parametrize("encoding", ["cumulative", "v1"])
def test_stream_call_split_across_events(proxy, encoding):
    text = "Checking.\n" + block("get_weather", {"city": "Zürich"})
    chunks = list(ask(proxy.client(), directive(text=text, chunk=3, encoding=encoding), stream=True))
    reply = assemble(chunks)
    assert reply["content"] == "Checking."
    assert [(c["name"], json.loads(c["arguments"])) for c in reply["calls"]] == [("get_weather", {"city": "Zürich"})]
    assert reply["finish"] == "tool_calls"
    assert chunks[0].choices[0].delta.role == "assistant"


def test_only_calls_give_null_content(proxy):
    reply = ask(proxy.client(), directive(text=block("get_time", {"tz": "UTC"})))
    assert reply.choices[0].message.content is None
    assert reply.choices[0].message.tool_calls[0].function.name == "get_time"


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_calls(proxy, stream):
    text = block("get_weather", {"city": "Oslo"}) + "\n" + block("get_time", {"tz": "CET"}) + "\n"
    response = ask(proxy.client(), directive(text=text, chunk=4), stream=stream)
    if stream:
        calls = [(c["name"], json.loads(c["arguments"])) for c in assemble(list(response))["calls"]]
    else:
        calls = [(c.function.name, json.loads(c.function.arguments)) for c in response.choices[0].message.tool_calls]
        assert len({c.id for c in response.choices[0].message.tool_calls}) == 2
    assert calls == [("get_weather", {"city": "Oslo"}), ("get_time", {"tz": "CET"})]


def test_parallel_tool_calls_false_returns_the_first_call_and_says_so_upstream(proxy, emulator):
    since = time.time()
    text = block("get_weather", {"city": "Oslo"}) + "\n" + block("get_time", {"tz": "CET"})
    reply = ask(proxy.client(), directive(text=text), parallel_tool_calls=False)
    assert [c.function.name for c in reply.choices[0].message.tool_calls] == ["get_weather"]
    [payload] = payloads_since(emulator, since)
    assert upstream_texts(payload)[0][1].endswith("Call at most one function per reply.")


def test_agent_directive_default_plan(proxy):
    """The protocol model (no raw text): it calls the first tool with schema-made arguments."""
    reply = ask(proxy.client(), "What is the weather like?")
    [call] = reply.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "x"}


# --------------------------------------------------------------------------------------------------
# What the upstream model is told: protocol text, history, tool_choice
# --------------------------------------------------------------------------------------------------

def test_multi_turn_sends_calls_and_results_back(proxy, emulator):
    """The second turn of an agent loop: the model sees what it called and what came back, and
    the protocol model answers from the results."""
    client = proxy.client()
    plan = directive(emu="agent", plan=[[{"name": "get_weather", "arguments": {"city": "Paris"}},
                                         {"name": "get_time", "arguments": {"tz": "CET"}}]],
                     text="Sunny at {results}.")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": plan}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    calls = first.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": calls[0].id, "content": "22 C"},
                 {"role": "tool", "tool_call_id": calls[1].id, "content": "noon"}]
    since = time.time()
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None
    assert second.choices[0].message.content == "Sunny at 22 C; noon."
    [payload] = payloads_since(emulator, since)
    texts = upstream_texts(payload)
    assert [role for role, _ in texts] == ["system", "system", "user", "assistant", "user"]
    assert texts[0][1].startswith("# Tools\n") and '"name": "get_weather"' in texts[0][1]
    assert texts[1][1] == "Be brief."
    assert texts[2][1] == plan
    assert texts[3][1] == (block("get_weather", {"city": "Paris"}) + "\n" + block("get_time", {"tz": "CET"}))
    assert texts[4][1] == (
        "<tool_response>\n" + json.dumps({"name": "get_weather", "tool_call_id": calls[0].id, "content": "22 C"})
        + "\n</tool_response>\n<tool_response>\n"
        + json.dumps({"name": "get_time", "tool_call_id": calls[1].id, "content": "noon"}) + "\n</tool_response>")


@pytest.mark.parametrize("choice,sentence", [
    ("auto", "Call a function only when it helps; otherwise answer directly."),
    ("required", "You must call at least one function in this reply."),
    ({"type": "function", "function": {"name": "get_time"}}, "You must call the function `get_time` in this reply."),
])
def test_tool_choice_is_told_to_the_model(proxy, emulator, choice, sentence):
    since = time.time()
    reply = ask(proxy.client(), "What time is it?", tool_choice=choice)
    [payload] = payloads_since(emulator, since)
    assert upstream_texts(payload)[0][1].endswith("</tool_call>\n\n" + sentence)
    expected = "get_time" if isinstance(choice, dict) else "get_weather"  # the protocol model obeys
    assert reply.choices[0].message.tool_calls[0].function.name == expected


@pytest.mark.parametrize("stream", [False, True])
def test_tool_choice_none_sends_no_tools_and_reads_no_calls(proxy, emulator, stream):
    since = time.time()
    text = "Here: " + block("get_time", {})
    response = ask(proxy.client(), directive(text=text), stream=stream, tool_choice="none")
    if stream:
        reply = assemble(list(response))
        assert (reply["content"], reply["calls"], reply["finish"]) == (text, [], "stop")
    else:
        assert response.choices[0].message.content == text and response.choices[0].message.tool_calls is None
    [payload] = payloads_since(emulator, since)
    assert upstream_texts(payload) == [("user", directive(text=text))]


def test_without_tools_the_messages_go_upstream_untouched(proxy, emulator):
    since = time.time()
    messages = [{"role": "system", "content": "sys <tool_call>"}, {"role": "user", "content": directive(text="hi")}]
    reply = proxy.client().chat.completions.create(model="gpt-4o", messages=messages)
    assert reply.choices[0].message.content == "hi" and reply.choices[0].message.tool_calls is None
    [payload] = payloads_since(emulator, since)
    assert [(m["author"], m["content"], m["metadata"]) for m in payload["messages"]] == [
        ({"role": "system"}, {"content_type": "text", "parts": ["sys <tool_call>"]}, {}),
        ({"role": "user"}, {"content_type": "text", "parts": [directive(text="hi")]}, {}),
    ]


def test_reasoning_model_gets_the_tools_in_the_first_user_message(proxy, emulator):
    since = time.time()
    reply = proxy.client().chat.completions.create(model="o1-mini", tools=TOOLS,
                                                   messages=[{"role": "user", "content": "What is the weather?"}])
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"
    [payload] = payloads_since(emulator, since)
    [(role, text)] = upstream_texts(payload)
    assert role == "user" and text.startswith("# Tools\n") and text.endswith("\nWhat is the weather?")


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_stays_apart_from_the_call(proxy, stream):
    content = directive(emu="thinking", text="Checking.\n" + block("get_time", {"tz": "UTC"}), chunk=4)
    response = proxy.client().chat.completions.create(model="o1-mini", tools=TOOLS, stream=stream,
                                                      messages=[{"role": "user", "content": content}])
    if stream:
        chunks = list(response)
        thinking = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
        reply = assemble(chunks)
        message_text, calls = reply["content"], [(c["name"], json.loads(c["arguments"])) for c in reply["calls"]]
    else:
        message = response.choices[0].message
        thinking = getattr(message, "reasoning_content", "")
        message_text, calls = message.content, [(c.function.name, json.loads(c.function.arguments))
                                                for c in message.tool_calls]
    assert thinking and "<tool_call>" not in thinking
    assert message_text == "Checking." and calls == [("get_time", {"tz": "UTC"})]


# --------------------------------------------------------------------------------------------------
# What the model gets wrong: repaired when clear, else text; never a crash
# --------------------------------------------------------------------------------------------------

BROKEN = {
    "unknown tool": block("get_stock", {"symbol": "ACME"}),
    "arguments that do not parse": '<tool_call>\n{"name": "get_weather", "arguments": {city: Paris}}\n</tool_call>',
    "schema mismatch": block("get_weather", {"town": "Paris"}),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_call_that_cannot_be_repaired_comes_back_as_text(proxy, kind, stream):
    text = "I will try.\n" + BROKEN[kind]
    response = ask(proxy.client(), directive(text=text, chunk=5), stream=stream)
    if stream:
        reply = assemble(list(response))
        assert (reply["content"], reply["calls"], reply["finish"]) == (text, [], "stop")
    else:
        assert response.choices[0].message.content == text
        assert response.choices[0].message.tool_calls is None
        assert response.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_slips_are_repaired(proxy, stream):
    text = ('<tool_call>\n```json\n{"name": "functions.get_weather", "arguments": "{\\"city\\": \\"Rome\\", '
            '\\"days\\": \\"3\\"}"}\n```\n</tool_call>')
    response = ask(proxy.client(), directive(text=text, chunk=2), stream=stream)
    if stream:
        calls = [(c["name"], json.loads(c["arguments"])) for c in assemble(list(response))["calls"]]
    else:
        calls = [(c.function.name, json.loads(c.function.arguments)) for c in response.choices[0].message.tool_calls]
    assert calls == [("get_weather", {"city": "Rome", "days": 3})]


@pytest.mark.parametrize("scenario", ["drop", "error_midstream"])
def test_a_reply_cut_inside_a_call_is_not_made_a_call(proxy, scenario):
    """The part that came would parse (missing braces are a known repair), but the reply failed:
    what came is shown as text with the error, never a call with arguments that may be cut short."""
    sent = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"'
    text = sent + ', "days": 3}}\n</tool_call>'
    response = requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-cut"}, json={
        "model": "gpt-4o", "stream": True, "tools": TOOLS,
        "messages": [{"role": "user", "content": directive(emu=scenario, text=text, chunk=len(sent), after_chunks=1)}]},
        stream=True, timeout=30)
    events = [json.loads(line[6:]) for line in response.iter_lines(decode_unicode=True)
              if line.startswith("data: {")]
    chunks = [e for e in events if "choices" in e]
    assert not any("tool_calls" in c["choices"][0]["delta"] for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content.startswith(sent + "\n\n[error: ")
    assert any("error" in e for e in events)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_keep_alives_while_a_long_call_is_written(proxy):
    """A call comes out only when its block closes: while the model writes it (here ~2.5 s), the
    client still hears from us every keep_alive_interval (1 s in the tests), though the upstream
    is not silent."""
    text = block("get_weather", {"city": "Llanfairpwllgwyngyll", "days": 3})
    response = requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-beat"}, json={
        "model": "gpt-4o", "stream": True, "tools": TOOLS,
        "messages": [{"role": "user", "content": directive(text=text, chunk=3, interval=0.1)}]},
        stream=True, timeout=30)
    lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    first_call = next(i for i, line in enumerate(lines) if '"tool_calls"' in line)
    assert lines[:first_call].count(": keep-alive") >= 2
    assert '"finish_reason":"tool_calls"' in lines[-2] and lines[-1] == "data: [DONE]"


def test_plain_answer_with_tools_offered_is_exact(proxy):
    text = "No call needed: 1 < 2, <b>tags</b> and <tool_c stay.\n"
    reply = assemble(list(ask(proxy.client(), directive(text=text, chunk=1), stream=True)))
    assert (reply["content"], reply["calls"], reply["finish"]) == (text, [], "stop")


def test_bad_tools_are_400s(proxy):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(proxy.client(), "hi", tools=[{"type": "web_search"}])
    assert caught.value.body["param"] == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as caught:
        proxy.client().chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": "hi"}, {"role": "tool", "content": "result"}])
    assert caught.value.body["param"] == "messages[1].tool_call_id"


# --------------------------------------------------------------------------------------------------
# The SDK's stream helper, raw SSE lines, LangChain
# --------------------------------------------------------------------------------------------------

class GetWeather(BaseModel):
    city: str
    days: int


def test_openai_stream_helper_with_pydantic_tool(proxy):
    text = "One moment.\n" + block("GetWeather", {"city": "Lima", "days": 4})
    with proxy.client().chat.completions.stream(
            model="gpt-4o", messages=[{"role": "user", "content": directive(text=text, chunk=3)}],
            tools=[openai.pydantic_function_tool(GetWeather)]) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    done = [e for e in events if e.type == "tool_calls.function.arguments.done"]
    assert [(e.name, e.index, e.parsed_arguments) for e in done] == [("GetWeather", 0, GetWeather(city="Lima", days=4))]
    assert "".join(e.delta for e in events if e.type == "content.delta") == "One moment."
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls[0].function.parsed_arguments == GetWeather(city="Lima", days=4)


def test_raw_sse_lines_as_nextchat_reads_them(proxy):
    text = "Ok.\n" + block("get_weather", {"city": "Kyiv"})
    response = requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-raw"}, json={
        "model": "gpt-4o", "stream": True, "tools": TOOLS,
        "messages": [{"role": "user", "content": directive(text=text, chunk=3)}]}, stream=True, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: "):]) for line in lines[:-1]]
    assert all(line.startswith("data: ") for line in lines)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    call_deltas = [d["tool_calls"] for d in deltas if "tool_calls" in d]
    first = call_deltas[0]
    assert len(first) == 1 and set(first[0]) == {"index", "id", "type", "function"}
    assert first[0]["function"] == {"name": "get_weather", "arguments": ""} and first[0]["index"] == 0
    assert all(set(d[0]) == {"index", "function"} and set(d[0]["function"]) == {"arguments"} for d in call_deltas[1:])
    assert json.loads("".join(d[0]["function"]["arguments"] for d in call_deltas[1:])) == {"city": "Kyiv"}
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "tool_calls"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert len({c["id"] for c in chunks}) == 1


def langchain_model(proxy):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="gpt-4o", base_url=proxy.url + "/v1", api_key="rt-langchain", max_retries=0, timeout=30)


def get_weather(city: str, days: int = 1) -> str:
    """Current weather of a city."""
    return f"sunny in {city}"


def test_langchain_bind_tools_invoke_and_stream(proxy):
    model = langchain_model(proxy).bind_tools([get_weather])
    prompt = directive(emu="agent", plan=[[{"name": "get_weather", "arguments": {"city": "Bern", "days": 2}}]],
                       say="Let me check.")
    message = model.invoke(prompt)
    assert message.content == "Let me check."
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_weather", {"city": "Bern", "days": 2})]
    assert message.tool_calls[0]["id"].startswith("call_")
    assert message.response_metadata["finish_reason"] == "tool_calls"
    streamed = None
    for chunk in model.stream(prompt):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed.content == "Let me check."
    assert [(c["name"], c["args"]) for c in streamed.tool_calls] == [("get_weather", {"city": "Bern", "days": 2})]


def test_langchain_agent_loop_answers_from_the_tool_result(proxy):
    """bind_tools, run the call, send the ToolMessage back: the protocol model answers from it."""
    from langchain_core.messages import HumanMessage, ToolMessage

    model = langchain_model(proxy).bind_tools([get_weather])
    history = [HumanMessage(directive(emu="agent", plan=[[{"name": "get_weather", "arguments": {"city": "Bern"}}]],
                                      text="It is {results}."))]
    first = model.invoke(history)
    [call] = first.tool_calls
    history += [first, ToolMessage(get_weather(**call["args"]), tool_call_id=call["id"])]
    final = model.invoke(history)
    assert final.content == "It is sunny in Bern." and not final.tool_calls


def run_readme_example(proxy, heading: str) -> None:
    """Runs the first Python block after ``heading`` in README.md against ``proxy``."""
    readme = open(__file__.replace("tests/test_tool_calls_e2e.py", "README.md"), encoding="utf-8").read()
    section = readme[readme.index(heading):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("\n```\n")]
    code = code.replace('"http://localhost:33333/v1"', repr(proxy.url + "/v1"))
    exec(compile(code, "README.md", "exec"), {"REFRESH_TOKEN": "rt-readme", "__name__": "readme"})


def test_the_readme_example_runs(proxy, capsys):
    run_readme_example(proxy, "### Tool calling")
    # The protocol model calls the first tool with a schema-made city ("x"), then answers from the result.
    assert capsys.readouterr().out == "Done: 22 °C and sunny in x\n"


class Forecast(BaseModel):
    city: str
    days: int


def test_langchain_structured_output_by_function_calling(proxy, emulator):
    """with_structured_output(method="function_calling") is a forced tool call: parsed into the model."""
    since = time.time()
    structured = langchain_model(proxy).with_structured_output(Forecast, method="function_calling")
    result = structured.invoke(directive(emu="agent", plan=[[{"name": "Forecast",
                                                               "arguments": {"city": "Graz", "days": 5}}]]))
    assert result == Forecast(city="Graz", days=5)
    [payload] = payloads_since(emulator, since)
    assert upstream_texts(payload)[0][1].endswith("You must call the function `Forecast` in this reply. "
                                                  "Call at most one function per reply.")


@pytest.mark.parametrize("streamed", [False, True])
def test_openai_agents_sdk_on_chat_completions_calls_two_tools(proxy, streamed):
    """The Agents SDK's chat-completions model: two rounds of calls, each tool run, then the answer."""
    import asyncio

    import agents

    agents.set_tracing_disabled(True)
    ran = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Current weather of a city."""
        ran.append(("get_weather", city))
        return f"sunny in {city}"

    @agents.function_tool
    def get_time(tz: str) -> str:
        """Time in a timezone."""
        ran.append(("get_time", tz))
        return f"noon in {tz}"

    client = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="rt-agents", max_retries=0, timeout=30)
    agent = agents.Agent(name="helper", instructions="Be brief.", tools=[get_weather, get_time],
                         model=agents.OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client))
    prompt = directive(emu="agent", plan=[[{"name": "get_weather", "arguments": {"city": "Oslo"}}],
                                          [{"name": "get_time", "arguments": {"tz": "CET"}}]], text="Answer: {results}")

    async def run_streamed():
        result = agents.Runner.run_streamed(agent, prompt)
        async for _ in result.stream_events():
            pass
        return result

    result = asyncio.run(run_streamed()) if streamed else agents.Runner.run_sync(agent, prompt)
    assert ran == [("get_weather", "Oslo"), ("get_time", "CET")]
    assert result.final_output == "Answer: noon in CET"
