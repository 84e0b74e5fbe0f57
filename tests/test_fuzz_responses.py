"""Property-based fuzzing of the Responses API's request translation: for any JSON-like body,
``parse_responses_request`` gives a ResponsesRequest or a 400 ApiError (never another exception),
and every request it accepts becomes a JSON-serialisable conversation payload (or an ApiError)."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend_to_api.errors import ApiError
from backend_to_api.models import ModelRegistry
from backend_to_api.responses.input_items import input_items, list_page
from backend_to_api.responses.request import parse_responses_request
from backend_to_api.responses.store import StoredResponse
from backend_to_api.settings import Settings
from backend_to_api.translate.conversation import build_conversation_payload

GPT_4O = ModelRegistry(Settings()).resolve("gpt-4o")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = ["model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text", "format",
        "reasoning", "effort", "max_output_tokens", "store", "previous_response_id", "stream", "metadata",
        "type", "role", "content", "name", "arguments", "call_id", "output", "parameters", "schema", "strict",
        "image_url", "file_data", "file_url", "file_id", "detail", "temperature", "top_p", "conversation", "mode",
        "tools", "input", "format", "truncation", "user", "top_logprobs"]
STRINGS = ["gpt-4o", "", "user", "assistant", "system", "developer", "message", "function_call",
           "function_call_output", "reasoning", "input_text", "output_text", "input_image", "input_file",
           "function", "web_search", "auto", "none", "required", "json_object", "json_schema", "text", "high",
           "custom", "custom_tool_call", "custom_tool_call_output", "code_interpreter", "file_search", "grammar",
           "allowed_tools", "mode",
           "{}", '{"a": 1}', "data:image/png;base64,iVBORw0KGgo=", "https://example.com/a.png", "ftp://x"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8),
                    st.sampled_from(STRINGS))
values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4),
    st.dictionaries(st.sampled_from(KEYS), children, max_size=6)), max_leaves=30)
texts = st.one_of(st.text(max_size=12), st.sampled_from(STRINGS))
parts = st.fixed_dictionaries({"type": st.sampled_from(["input_text", "output_text", "input_image", "input_file",
                                                        "refusal", "input_audio"])},
                              optional={key: st.one_of(texts, scalars) for key in
                                        ("text", "image_url", "file_data", "file_url", "file_id", "detail")})
contents = st.one_of(texts, st.lists(parts, max_size=3), scalars)
items = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]),
                           "content": contents}, optional={"type": st.just("message")}),
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": texts, "name": texts, "arguments": texts}),
    st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": texts, "output": contents}),
    st.fixed_dictionaries({"type": st.just("custom_tool_call"), "call_id": texts, "name": texts, "input": texts}),
    st.fixed_dictionaries({"type": st.just("custom_tool_call_output"), "call_id": texts, "output": contents}),
    values)
tools = st.lists(st.one_of(st.fixed_dictionaries(
    {"type": st.sampled_from(["function", "web_search", "custom", "file_search"]),
     "name": st.sampled_from(["f", "get_weather", "a b"])},
    optional={"parameters": st.one_of(values, st.just({"type": "object", "properties": {}})),
              "format": values, "description": texts}), values), max_size=3)
OTHER = {key: values for key in KEYS if key not in ("model", "input", "tools")}
CORE = {"model": st.just("gpt-4o"), "input": st.one_of(texts, st.lists(items, max_size=5))}
bodies = st.one_of(values, st.fixed_dictionaries(CORE, optional={"tools": tools, "instructions": texts}),
                   st.fixed_dictionaries(CORE, optional={"tools": tools, **OTHER}))

@FUZZ
@given(bodies)
def test_any_body_is_a_request_or_a_400(body):
    try:
        request = parse_responses_request(body, max_files=10)
    except ApiError as error:
        assert error.status == 400 and error.message
        return
    try:
        payload = build_conversation_payload(request.chat_request(), GPT_4O, hide_history=False)
    except ApiError as error:
        assert error.status == 400
        return
    json.dumps(payload)


queries = st.dictionaries(st.sampled_from(["order", "limit", "after", "include"]),
                          st.one_of(st.text(max_size=6), st.sampled_from(["asc", "desc", "1", "100", "101", "0",
                                                                          "-1", "05", "\u0661", "\u00b2", "msg_x"])))


@FUZZ
@given(queries, st.integers(min_value=0, max_value=5))
def test_any_input_items_query_is_a_page_or_a_400(query, count):
    stored = StoredResponse({"id": "resp_1", "output": [{"type": "message", "id": "msg_out"}]},
                            [{"role": "user", "content": str(n)} for n in range(count)]
                            + [{"type": "message", "id": "msg_out"}])
    try:
        page = list_page(input_items(stored), query)
    except ApiError as error:
        assert error.status == 400 and error.param in ("order", "limit", "after")
        return
    assert page["object"] == "list" and len(page["data"]) <= 100
    assert all(item["id"] != "msg_out" for item in page["data"])  # the response's own output is no input
