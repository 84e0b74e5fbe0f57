"""The emulated model that follows the tool-call / response-format protocol (issue 15), driven over
real HTTP with hand-built payloads in the contract's shapes (tests/emulator/protocol_model.py)."""
from __future__ import annotations

import json
import uuid

import jsonschema
import pytest
import requests

from tests.emulator.protocol_model import FENCE_LEAD, NOT_JSON, call_block
from tests.emulator.schema_instance import instance
from tests.emulator.tokens import mint_access_token
from tests.test_emulator_selftest import _cumulative_messages, _events, _v1_messages

WEATHER = {"type": "object", "properties": {
    "city": {"type": "string", "description": "City name"},
    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    "days": {"type": "integer", "minimum": 3}}, "required": ["city", "unit", "days"]}
TIME = {"type": "object", "properties": {"zone": {"type": "string", "default": "UTC"}}}
TOOLS = ({"name": "get_weather", "description": "Weather now", "parameters": WEATHER},
         {"name": "get_time", "description": "The time", "parameters": TIME})
AUTO = "Call a function only when it helps; otherwise answer directly."
# What pydantic emits for a model with a nested model, an optional field, an enum and a list.
PYDANTIC_SCHEMA = {
    "$defs": {"Address": {"properties": {"street": {"title": "Street", "type": "string"},
                                         "zip": {"title": "Zip", "type": "integer", "maximum": 0}},
                          "required": ["street", "zip"], "title": "Address", "type": "object",
                          "additionalProperties": False},
              "Kind": {"enum": ["person", "company"], "title": "Kind", "type": "string"}},
    "properties": {"name": {"title": "Name", "type": "string", "minLength": 3},
                   "kind": {"$ref": "#/$defs/Kind"},
                   "address": {"$ref": "#/$defs/Address"},
                   "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                   "tags": {"items": {"type": "string"}, "type": "array", "minItems": 2},
                   "score": {"type": ["number", "null"]},
                   "alive": {"type": "boolean"}},
    "required": ["name", "kind", "address", "nickname", "tags", "score", "alive"],
    "title": "Person", "type": "object", "additionalProperties": False}


def tools_text(tools=TOOLS, choice: str = AUTO) -> str:
    """The contract's tools system text (translate/conversation.py sends it first)."""
    lines = "\n".join(json.dumps({"type": "function", "function": tool}) for tool in tools)
    return ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n"
            f"<tools>\n{lines}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n' + choice)


def format_text(schema: dict | None = None, name: str = "response") -> str:
    """The contract's response-format system text (json_object when no schema)."""
    text = ("# Response format\n\nAnswer with one JSON object and nothing else: no prose before or "
            "after it, no Markdown code fences.")
    if schema is not None:
        text += (f"\nThe JSON object must be valid against this JSON Schema (named {name}):\n"
                 f"<json_schema>\n{json.dumps(schema)}\n</json_schema>")
    return text


def message(role: str, text: str) -> dict:
    return {"id": str(uuid.uuid4()), "author": {"role": role},
            "content": {"content_type": "text", "parts": [text]}, "metadata": {}}


def tool_responses(*results: tuple[str, str]) -> dict:
    """One upstream user message holding a run of tool results, as the contract renders them."""
    blocks = [f"<tool_response>\n{json.dumps({'name': name, 'tool_call_id': f'call_{i}', 'content': content})}"
              "\n</tool_response>" for i, (name, content) in enumerate(results)]
    return message("user", "\n".join(blocks))


def agent(**values) -> str:
    return json.dumps({"emu": "agent", **values})


def converse(emulator, messages: list[dict], model: str = "gpt-4o") -> requests.Response:
    payload = {"action": "next", "model": model, "parent_message_id": str(uuid.uuid4()),
               "conversation_id": None, "messages": messages}
    token = mint_access_token("rt-protocol", 3600)
    return requests.post(f"{emulator.url}/backend-api/conversation", json=payload, timeout=15,
                         headers={"Authorization": f"Bearer {token}"})


def texts_sent(reply: requests.Response) -> list[str]:
    """The answer's text as each event left it (cumulative, or rebuilt from v1 appends)."""
    events = _events(reply.content)
    if events[0][0] == "delta_encoding":
        final = [m for m in _v1_messages(events).values() if m["author"]["role"] == "assistant"][-1]
        pieces = [json.loads(data).get("v") for name, data in events if name == "delta"]
        seen, grown = [], ""
        for piece in pieces:
            if isinstance(piece, str) and final["content"]["parts"][0].startswith(grown + piece):
                grown += piece
                seen.append(grown)
        return seen
    answers = [m for m in (json.loads(data)["message"] for name, data in events
                           if name is None and data.startswith('{"message": {'))
               if m["author"]["role"] == "assistant" and m["content"]["content_type"] == "text"]
    return [m["content"]["parts"][0] for m in answers if m["id"] == answers[-1]["id"]]


def answer(reply: requests.Response) -> str:
    assert reply.status_code == 200, reply.text
    return texts_sent(reply)[-1]


@pytest.fixture
def emu(emulator):
    emulator.reset()
    return emulator


def test_a_plan_plays_its_rounds_then_answers_with_the_last_results(emu):
    plan = [[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "days": 3}},
             {"name": "get_time", "arguments": {}}],
            [{"name": "get_time", "arguments": {"zone": "CET"}}]]
    user = message("user", agent(plan=plan, say="Let me look.", text="It is {results}."))
    history = [message("system", tools_text()), user]
    first = answer(converse(emu, history))
    assert first == "\n".join(["Let me look.",
                               call_block("get_weather", {"city": "Paris", "unit": "celsius", "days": 3}),
                               call_block("get_time", {})])
    history += [message("assistant", first), tool_responses(("get_weather", "sunny"), ("get_time", "9:00"))]
    second = answer(converse(emu, history))
    assert second == "Let me look.\n" + call_block("get_time", {"zone": "CET"})
    history += [message("assistant", second), tool_responses(("get_time", "10:00 CET"))]
    assert answer(converse(emu, history)) == "It is 10:00 CET."
    assert emu.streams()[-1]["scenario"] == "agent"


def test_without_a_directive_the_first_tool_is_called_with_arguments_valid_for_its_schema(emu):
    history = [message("system", tools_text()), message("user", "What is the weather in Paris?")]
    first = answer(converse(emu, history))
    call = json.loads(first.removeprefix("<tool_call>\n").removesuffix("\n</tool_call>"))
    assert call == {"name": "get_weather", "arguments": {"city": "x", "unit": "celsius", "days": 3}}
    jsonschema.validate(call["arguments"], WEATHER)
    history += [message("assistant", first), tool_responses(("get_weather", "sunny, 21 C"))]
    assert answer(converse(emu, history)) == "Done: sunny, 21 C"
    # A new user turn starts the rounds again.
    history += [message("assistant", "Done: sunny, 21 C"), message("user", "And tomorrow?")]
    assert answer(converse(emu, history)).startswith("<tool_call>\n")


def test_a_user_message_with_words_besides_tool_responses_is_the_users_turn(emu):
    pasted = tool_responses(("get_time", "9:00"))["content"]["parts"][0] + "\nWhat does this mean?"
    history = [message("system", tools_text()), message("user", pasted)]
    assert answer(converse(emu, history)).startswith("<tool_call>\n")


def test_a_named_tool_choice_is_the_tool_called(emu):
    choice = "You must call the function `get_time` in this reply. Call at most one function per reply."
    history = [message("system", tools_text(choice=choice)), message("user", "Hi")]
    assert answer(converse(emu, history)) == call_block("get_time", {"zone": "UTC"})


def test_raw_blocks_are_said_verbatim_and_other_directives_play_as_before(emu):
    broken = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"\n</tool_call>'
    history = [message("system", tools_text()), message("user", agent(plan=[[{"raw": broken}]]))]
    assert answer(converse(emu, history)) == broken
    # Another scenario is played from the user's own message, even on a tool round.
    said = '<tool_call>\n{"name": "nope", "arguments": {}}\n</tool_call>'
    history = [message("system", tools_text()), message("user", json.dumps({"emu": "text", "text": said})),
               message("assistant", said), tool_responses(("nope", "error"))]
    assert answer(converse(emu, history)) == said
    assert emu.streams()[-1]["scenario"] == "text"


def test_json_object_echoes_the_user_words_and_json_schema_gives_a_valid_instance(emu):
    history = [message("system", format_text()), message("user", "Name a colour")]
    assert json.loads(answer(converse(emu, history))) == {"echo": "Name a colour"}
    history = [message("system", format_text(PYDANTIC_SCHEMA, "Person")), message("user", "Who?")]
    person = json.loads(answer(converse(emu, history)))
    jsonschema.validate(person, PYDANTIC_SCHEMA)
    assert person == {"name": "xxx", "kind": "person", "address": {"street": "x", "zip": 0},
                      "nickname": None, "tags": ["x", "x"], "score": 1.5, "alive": True}


def test_tools_then_format_answers_json_after_the_calls(emu):
    history = [message("system", tools_text()), message("system", format_text(TIME)), message("user", "Go")]
    first = answer(converse(emu, history))
    assert first.startswith("<tool_call>\n")
    history += [message("assistant", first), tool_responses(("get_weather", "rain"))]
    assert json.loads(answer(converse(emu, history))) == {"zone": "UTC"}


def test_fenced_json_has_a_sentence_before_it(emu):
    history = [message("system", format_text()), message("user", agent(fence=True))]
    text = answer(converse(emu, history))
    lead, fenced = text.split("\n", 1)
    assert lead == FENCE_LEAD and fenced.startswith("```json\n") and fenced.endswith("\n```")
    assert json.loads(fenced[8:-4]) == {"echo": agent(fence=True)}


def correction() -> dict:
    return message("user", "Your previous reply was not valid: it does not match the JSON Schema. "
                           "Answer again with the JSON object only.")


@pytest.mark.parametrize("schema", [PYDANTIC_SCHEMA, {"type": "object"}, None])
def test_bad_first_mismatches_once_and_always_bad_every_time(emu, schema):
    history = [message("system", format_text(schema)), message("user", agent(bad_first=True))]
    bad = answer(converse(emu, history))
    assert not _fits(bad, schema)
    history += [message("assistant", bad), correction()]
    assert _fits(answer(converse(emu, history)), schema)
    history[1] = message("user", agent(always_bad=True))
    assert not _fits(answer(converse(emu, history)), schema)
    history += [message("assistant", bad), correction()]
    assert not _fits(answer(converse(emu, history)), schema)


def _fits(text: str, schema: dict | None) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    if schema is None:
        return isinstance(value, dict)
    return jsonschema.validators.validator_for(schema)(schema).is_valid(value)


def test_bad_json_object_reply_is_prose(emu):
    history = [message("system", format_text()), message("user", agent(always_bad=True))]
    assert answer(converse(emu, history)) == NOT_JSON


@pytest.mark.parametrize("encoding", ["cumulative", "v1"])
def test_tags_are_split_across_events_and_the_text_reassembles(emu, encoding):
    plan = [[{"name": "get_time", "arguments": {"zone": "Europe/Paris"}}]]
    user = message("user", agent(plan=plan, say="Checking.", chunk=4, encoding=encoding))
    sent = texts_sent(converse(emu, [message("system", tools_text()), user]))
    expected = "Checking.\n" + call_block("get_time", {"zone": "Europe/Paris"})
    assert sent[-1] == expected
    assert all(expected.startswith(text) for text in sent)
    for tag in ("<tool_call>", "</tool_call>"):  # some event ends inside each tag
        start = expected.index(tag)
        assert any(start < len(text) < start + len(tag) for text in sent), (tag, sent)


def test_a_reasoning_model_with_the_prompt_folded_into_the_user_message(emu):
    """o1-style payloads: the system texts (the caller's own too) open the first user message."""
    own = "You are terse."
    folded = "\n\n".join([tools_text(), format_text(), own]) + "\n" + agent(think=True)
    history = [message("user", folded)]
    reply = converse(emu, history, model="o1-preview")
    first = answer(reply)
    assert first == call_block("get_weather", {"city": "x", "unit": "celsius", "days": 3})
    thoughts = [m for m in _cumulative_messages(_events(reply.content)).values()
                if m["content"]["content_type"] == "thoughts"]
    assert thoughts and thoughts[-1]["metadata"]["model_slug"] == "o1-preview"
    # The tool round: the folded message stays the user's turn; the results are never the user's.
    history += [message("assistant", first), tool_responses(("get_weather", "sunny"))]
    assert json.loads(answer(converse(emu, history, model="o1-preview"))) == {
        "echo": own + "\n" + agent(think=True)}
    plain = "\n\n".join([format_text()]) + "\nName a colour"
    assert json.loads(answer(converse(emu, [message("user", plain)], model="o1-mini"))) == {
        "echo": "Name a colour"}


def test_an_agent_directive_without_the_prompt_still_plays_its_plan(emu):
    """tool_choice "none" sends no tools block; a scripted model may still write a call."""
    call = {"name": "get_time", "arguments": {}}
    history = [message("user", agent(plan=[[call]], text="Said {results}."))]
    assert answer(converse(emu, history)) == call_block("get_time", {})
    history += [message("assistant", call_block("get_time", {})), tool_responses(("get_time", "9"))]
    assert answer(converse(emu, history)) == "Said 9."
    # No prompt, no directive: the echo as always, even of a tool result.
    history = [message("user", "hi"), tool_responses(("x", "y"))]
    assert answer(converse(emu, history)).startswith("Echo: <tool_response>")


@pytest.mark.parametrize("bad", [
    {"plan": [{"name": "f", "arguments": {}}]},
    {"plan": [[{"name": "f"}]]},
    {"plan": [[{"raw": 1}]]},
    {"plan": "f"},
    {"fence": "yes"},
    {"plans": []},
])
def test_malformed_agent_directives_are_422(emu, bad):
    reply = converse(emu, [message("system", tools_text()), message("user", agent(**bad))])
    assert reply.status_code == 422 and "emulator directive" in reply.json()["detail"]


def test_a_broken_tools_block_is_the_proxys_fault_422(emu):
    text = tools_text().replace('{"type": "function"', '{"type": function', 1)
    reply = converse(emu, [message("system", text), message("user", "hi")])
    assert reply.status_code == 422 and "<tools> holds invalid JSON" in reply.json()["detail"]


def test_the_synthesizer_follows_refs_all_of_and_stops_recursion():
    tree = {"definitions": {"Node": {"type": "object", "required": ["name", "children"],
                                     "properties": {"name": {"type": "string", "examples": ["root"]},
                                                    "children": {"type": "array", "minItems": 1,
                                                                 "items": {"$ref": "#/definitions/Node"}}}}},
            "$ref": "#/definitions/Node"}
    node = instance(tree)
    assert node["name"] == "root" and node["children"][0]["children"][0]["name"] == "root"
    merged = {"allOf": [{"type": "object", "required": ["a"], "properties": {"a": {"const": 7}}},
                        {"type": "object", "properties": {"b": {"type": "number", "maximum": 1}}}]}
    assert instance(merged) == {"a": 7, "b": 1}
    assert instance({"oneOf": [{"type": "integer", "minimum": 5}, {"type": "string"}]}) == 5


def test_the_product_prompt_texts_are_read_as_the_contract_says(emu):
    """The proxy's own protocol_text and OutputFormat.instruction, folded as for o1: the emulator
    must find the tools, the forced choice and the schema, and the user's words alone."""
    from backend_to_api.structured_output import parse_response_format
    from backend_to_api.tool_calls.prompt import protocol_text
    from backend_to_api.tool_calls.toolset import parse_chat_tools

    toolset = parse_chat_tools({"tools": [{"type": "function", "function": tool} for tool in TOOLS],
                                "tool_choice": {"type": "function", "function": {"name": "get_time"}},
                                "parallel_tool_calls": False})
    schema_format = parse_response_format({"type": "json_schema", "json_schema": {
        "name": "Person", "schema": PYDANTIC_SCHEMA, "strict": True}})
    folded = protocol_text(toolset) + "\n\n" + schema_format.instruction() + "\nWho?"
    history = [message("user", folded)]
    first = answer(converse(emu, history, model="o1-preview"))
    assert first == call_block("get_time", {"zone": "UTC"})
    history += [message("assistant", first), tool_responses(("get_time", "noon"))]
    person = answer(converse(emu, history, model="o1-preview"))
    assert schema_format.check(person) == person
    object_format = parse_response_format({"type": "json_object"})
    plain = object_format.instruction() + "\nName a colour"
    assert json.loads(answer(converse(emu, [message("user", plain)]))) == {"echo": "Name a colour"}
