"""What a different protocol-following upstream may send, and what real frameworks send us, end to
end (openai SDK / raw HTTP -> proxy -> emulator). The model's raw text is played exactly
(``{"emu": "text", ...}``) one character per event, in both delta encodings, so every tag and every
line end is split; the 2026 stream shapes carry the calls too. Also: usage counts the protocol
text, the legacy ``functions`` parameter, framework bodies, and the README's structured-output
example."""
from __future__ import annotations

import json
import time

import pytest
import requests

from .conftest import directive
from .test_tool_calls_e2e import TOOLS, assemble, ask, block, payloads_since, run_readme_example, upstream_texts

PARIS = ("get_weather", {"city": "Paris"})
UTC = ("get_time", {"tz": "UTC"})

# (the model's raw text, the content the client gets, the calls it gets)
RAW_REPLIES = {
    "one_line": ('<tool_call>{"name":"get_weather","arguments":{"city":"Paris"}}</tool_call>', "", [PARIS]),
    "crlf": ('Let me check.\r\n<tool_call>\r\n{"name": "get_weather", "arguments": {"city": "Paris"}}\r\n'
             "</tool_call>\r\n", "Let me check.", [PARIS]),
    "arguments_as_json_string": ('<tool_call>\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}\n'
                                 "</tool_call>", "", [PARIS]),
    "two_calls_text_between": ("First the weather.\n" + block(*PARIS) + "\nThen the time:\n" + block(*UTC),
                               "First the weather.\nThen the time:", [PARIS, UTC]),
    "prose_after_the_call": (block(*PARIS) + "\nI will tell you once it answers.",
                             "\nI will tell you once it answers.", [PARIS]),
    "whitespace_then_call": ("  \n\n" + block(*PARIS) + "\n\n", "", [PARIS]),
    "keys_in_other_order": ('<tool_call>\n{"arguments": {"city": "Paris"}, "name": "get_weather"}\n</tool_call>',
                            "", [PARIS]),
    "number_as_string": (block("get_weather", {"city": "Paris", "days": "3"}), "",
                         [("get_weather", {"city": "Paris", "days": 3})]),
}


@pytest.mark.parametrize("encoding", ["cumulative", "v1"])
@pytest.mark.parametrize("case", sorted(RAW_REPLIES))
def test_raw_reply_streamed_one_character_per_event(proxy, case, encoding):
    text, content, calls = RAW_REPLIES[case]
    chunks = list(ask(proxy.client(), directive(text=text, chunk=1, encoding=encoding), stream=True))
    reply = assemble(chunks)
    assert reply["content"] == content
    assert [(c["name"], json.loads(c["arguments"])) for c in reply["calls"]] == calls
    assert reply["finish"] == "tool_calls"


@pytest.mark.parametrize("case", sorted(RAW_REPLIES))
def test_raw_reply_not_streamed(proxy, case):
    text, content, calls = RAW_REPLIES[case]
    message = ask(proxy.client(), directive(text=text, chunk=5)).choices[0].message
    assert message.content == (content or None)
    assert [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == calls


@pytest.mark.parametrize("scenario, model", [("thinking_2026", "gpt-5"), ("auto_channels", "auto")])
@pytest.mark.parametrize("stream", [False, True])
def test_calls_in_the_2026_stream_shapes(proxy, scenario, model, stream):
    """Thinking (or an analysis channel) before the call, text events packed two to a line, the
    model routed: the call still comes out whole, apart from the thinking."""
    text = "Checking.\n" + block(*PARIS)
    response = proxy.client().chat.completions.create(
        model=model, tools=TOOLS, stream=stream,
        messages=[{"role": "user", "content": directive(emu=scenario, text=text, chunk=2, encoding="v1")}])
    if stream:
        reply = assemble(list(response))
        content, calls = reply["content"], [(c["name"], json.loads(c["arguments"])) for c in reply["calls"]]
    else:
        message = response.choices[0].message
        content = message.content
        calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]
    assert content == "Checking." and calls == [PARIS]


@pytest.mark.parametrize("text, content", [(block(*PARIS), None), ("Checking.\n" + block(*PARIS), "Checking.")])
def test_stream_helper_final_content_is_null_when_the_reply_only_calls(proxy, text, content):
    """As at OpenAI: the openai SDK's accumulated message has content None, not "", for calls only."""
    messages = [{"role": "user", "content": directive(text=text, chunk=2)}]
    with proxy.client().chat.completions.stream(model="gpt-4o", tools=TOOLS, messages=messages) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == content and message.tool_calls[0].function.name == "get_weather"


def test_stream_helper_final_content_is_null_for_calls_with_a_response_format(proxy):
    """Tools and a response format (the Agents SDK with an output_type): the held reply's calls."""
    fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA}}
    with proxy.client().chat.completions.stream(
            model="gpt-4o", tools=TOOLS, response_format=fmt,
            messages=[{"role": "user", "content": "Weather in Paris, as JSON?"}]) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.content is None and message.tool_calls[0].function.name == "get_weather"


# --------------------------------------------------------------------------------------------------
# usage counts what the model reads: the tools block and the format instruction
# --------------------------------------------------------------------------------------------------

def test_prompt_tokens_count_the_tools_block_and_the_format_instruction(proxy):
    client = proxy.client()
    question = directive(text="Fine.")
    plain = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": question}])
    with_tools = ask(client, question)
    with_format = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": directive(text='{"a": 1}')}],
        response_format={"type": "json_object"})
    # The tools block is ~150 tokens for these two tools; the instruction ~30.
    assert with_tools.usage.prompt_tokens - plain.usage.prompt_tokens > 100
    assert with_format.usage.prompt_tokens - plain.usage.prompt_tokens > 20


# --------------------------------------------------------------------------------------------------
# what frameworks send
# --------------------------------------------------------------------------------------------------

def test_a_framework_body_with_every_extra_field_is_accepted(proxy, emulator):
    """LangChain / LlamaIndex / Vercel AI SDK bodies: sampling and bookkeeping fields, names on
    messages, a tool result as text parts, an assistant turn with text AND calls, a refusal part."""
    since = time.time()
    body = {
        "model": "gpt-4o", "stream": False, "tools": TOOLS, "tool_choice": "auto", "parallel_tool_calls": True,
        "n": 1, "stop": ["\n\n\n"], "seed": 7, "logit_bias": {"50256": -100}, "user": "u-1",
        "metadata": {"run": "r1"}, "store": False, "modalities": ["text"], "service_tier": "auto",
        "prediction": {"type": "content", "content": "x"}, "max_completion_tokens": 500, "temperature": 0,
        "frequency_penalty": 0, "presence_penalty": 0, "logprobs": False, "top_p": 1,
        "messages": [
            {"role": "system", "content": "Be brief.", "name": "setup"},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}], "name": "ann"},
            {"role": "assistant", "content": "Looking.", "refusal": None,
             "tool_calls": [{"id": "call_1", "type": "function",
                             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "22 C"},
                                                                    {"type": "text", "text": "sunny"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot say more."}]},
            {"role": "user", "content": directive(text="It is 22 C.")},
        ]}
    response = requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-fw"},
                             json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "It is 22 C."
    [payload] = payloads_since(emulator, since)
    sent = upstream_texts(payload)
    assert ("assistant", 'Looking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
                         "</tool_call>") in sent
    assert ("user", '<tool_response>\n{"name": "get_weather", "tool_call_id": "call_1", "content": '
                    '"22 C\\nsunny"}\n</tool_response>') in sent
    assert ("assistant", "I cannot say more.") in sent


# --------------------------------------------------------------------------------------------------
# the legacy functions / function_call parameters
# --------------------------------------------------------------------------------------------------

FUNCTIONS = [tool["function"] for tool in TOOLS]


def legacy(proxy, text: str, stream: bool, **extra) -> requests.Response:
    body = {"model": "gpt-4o", "stream": stream, "functions": FUNCTIONS,
            "messages": [{"role": "user", "content": text}], **extra}
    return requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-legacy"},
                         json=body, stream=stream, timeout=30)


def test_legacy_functions_answer_with_function_call(proxy, emulator):
    since = time.time()
    text = "One moment.\n" + block(*PARIS) + "\n" + block(*UTC)
    response = legacy(proxy, directive(text=text), stream=False)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "function_call"
    message = choice["message"]
    assert "tool_calls" not in message and message["content"] == "One moment."
    # One call per reply in the legacy API: the model is told so, and only the first is returned.
    assert message["function_call"]["name"] == "get_weather"
    assert json.loads(message["function_call"]["arguments"]) == {"city": "Paris"}
    [payload] = payloads_since(emulator, since)
    assert upstream_texts(payload)[0][1].endswith("Call at most one function per reply.")


def test_legacy_functions_streamed(proxy):
    response = legacy(proxy, directive(text=block(*PARIS), chunk=1), stream=True)
    lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: "):]) for line in lines[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    calls = [d["function_call"] for d in deltas if "function_call" in d]
    assert calls[0] == {"name": "get_weather", "arguments": ""}
    assert all(set(call) == {"arguments"} for call in calls[1:])
    assert json.loads("".join(call["arguments"] for call in calls[1:])) == {"city": "Paris"}
    assert not any("tool_calls" in d for d in deltas)
    assert chunks[-1]["choices"][0]["finish_reason"] == "function_call"


def test_legacy_history_and_function_call_choice(proxy, emulator):
    """The openai SDK's own legacy parameters; a named function_call is the forced choice, and
    the history's function_call / function messages go back as blocks."""
    since = time.time()
    messages = [{"role": "user", "content": "Time?"},
                {"role": "assistant", "content": None,
                 "function_call": {"name": "get_time", "arguments": '{"tz": "UTC"}'}},
                {"role": "function", "name": "get_time", "content": "12:00"},
                {"role": "user", "content": "And the weather in Oslo?"}]
    reply = proxy.client().chat.completions.create(model="gpt-4o", messages=messages, functions=FUNCTIONS,
                                                   function_call={"name": "get_weather"})
    choice = reply.choices[0]
    assert choice.finish_reason == "function_call" and choice.message.function_call.name == "get_weather"
    [payload] = payloads_since(emulator, since)
    sent = upstream_texts(payload)
    assert sent[0][1].endswith("You must call the function `get_weather` in this reply. "
                               "Call at most one function per reply.")
    assert ("assistant", '<tool_call>\n{"name": "get_time", "arguments": {"tz": "UTC"}}\n</tool_call>') in sent
    assert ("user", '<tool_response>\n{"name": "get_time", "tool_call_id": null, "content": "12:00"}\n'
                    "</tool_response>") in sent


def test_legacy_function_call_none_and_bad_shapes(proxy):
    response = legacy(proxy, directive(text=block(*PARIS)), stream=False, function_call="none")
    message = response.json()["choices"][0]["message"]
    assert "function_call" not in message and message["content"].startswith("<tool_call>")
    for extra, param in (({"tools": TOOLS}, "functions"), ({"function_call": {"name": "nope"}}, "function_call"),
                         ({"function_call": 3}, "function_call")):
        response = legacy(proxy, "hi", stream=False, **extra)
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
    bad = requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-legacy"},
                        json={"model": "gpt-4o", "functions": [{"name": "bad name"}],
                              "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "functions[0].name"


# --------------------------------------------------------------------------------------------------
# structured output: answers another model may give
# --------------------------------------------------------------------------------------------------

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temperature": {"type": "number"},
                                                   "days": {"type": "integer"}},
                  "required": ["city", "temperature"], "additionalProperties": False}


@pytest.mark.parametrize("text, expected", [
    ('Here it is:\n{"city": "Paris", "temperature": 21.5}\nHope this helps.', {"city": "Paris", "temperature": 21.5}),
    ('```json\r\n{"temperature": 21.5, "city": "Paris"}\r\n```', {"temperature": 21.5, "city": "Paris"}),
    ('{"city": "Paris", "temperature": "21.5", "days": "3"}', {"city": "Paris", "temperature": 21.5, "days": 3}),
])
@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_answers_in_prose_fences_or_with_numbers_as_strings(proxy, emulator, text, expected, stream):
    since = time.time()
    response = proxy.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": directive(text=text, chunk=1, encoding="v1")}],
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA,
                                                                "strict": True}}, stream=stream)
    content = "".join(c.choices[0].delta.content or "" for c in response if c.choices) if stream \
        else response.choices[0].message.content
    assert json.loads(content) == expected
    assert len(payloads_since(emulator, since)) == 1  # no retry was needed


def test_the_structured_output_readme_example_runs(proxy, capsys):
    run_readme_example(proxy, "### Structured output")
    parsed, plain = capsys.readouterr().out.splitlines()
    # The emulated model makes an instance of the schema, and echoes the question for json_object.
    assert parsed.startswith("city=") and "temperature=" in parsed
    assert json.loads(plain) == {"echo": "Three colours as a JSON object."}
