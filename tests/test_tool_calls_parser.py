"""tool_calls/: the incremental parser (every split of the reply text), its repairs, the protocol
text and history rendering, and the 400s of parse_chat_tools."""
from __future__ import annotations

import json
from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend_to_api.errors import ApiError
from backend_to_api.tool_calls.parser import ToolCallParser
from backend_to_api.tool_calls.prompt import call_block, protocol_text, render_history
from backend_to_api.render.usage import count_prompt
from backend_to_api.tool_calls.toolset import Tool, ToolCall, ToolSet, new_call_id, parse_chat_tools, parse_tools
from backend_to_api.translate.chat_request import ChatMessage, parse_chat_request

WEATHER = Tool("get_weather", "Weather of a city", {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
                   "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
    "additionalProperties": False,
})
TIME = Tool("get_time", "", {"type": "object", "properties": {}})
TOOLS = ToolSet((WEATHER, TIME), "auto")


def block(name: str, arguments) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def parse(text: str, toolset: ToolSet = TOOLS, cuts: List[int] = ()) -> list:
    """Feed ``text`` cut at ``cuts``; text pieces merged, calls as (name, arguments as dict)."""
    parser = ToolCallParser(toolset)
    pieces, start = [], 0
    for cut in list(cuts) + [len(text)]:
        pieces += parser.feed(text[start:cut])
        start = cut
    pieces += parser.finish()
    merged: list = []
    for piece in pieces:
        if isinstance(piece, str):
            assert piece, "empty text pieces are never emitted"
            if merged and isinstance(merged[-1], str):
                merged[-1] += piece
                continue
            merged.append(piece)
        else:
            assert piece.id.startswith("call_") and len(piece.id) == 29
            merged.append((piece.name, json.loads(piece.arguments)))
    return merged


SAMPLES = [
    ("Let me check.\n" + block("get_weather", {"city": "Paris"}),
     ["Let me check.", ("get_weather", {"city": "Paris"})]),
    (block("get_weather", {"city": "Oslo"}) + "\n" + block("get_time", {}) + "\n",
     [("get_weather", {"city": "Oslo"}), ("get_time", {})]),
    ("Plain answer, no call: 1 < 2 and <b>bold</b> and <tool without call.\n\n",
     ["Plain answer, no call: 1 < 2 and <b>bold</b> and <tool without call.\n\n"]),
    ("A " + block("nope", {}) + " B", ["A <tool_call>\n" + json.dumps({"name": "nope", "arguments": {}})
                                       + "\n</tool_call> B"]),
    ("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}",  # never closed
     [("get_weather", {"city": "Rome"})]),
    ("Before\n" + block("get_time", {}) + "\nAfter the call.", ["Before", ("get_time", {}), "\nAfter the call."]),
    # a call put in a code fence: the fence is layout and goes with the call
    ("Sure:\n```xml\n" + block("get_time", {}) + "\n" + block("get_time", {}) + "\n```\nDone.",
     ["Sure:", ("get_time", {}), ("get_time", {}), "\nDone."]),
    ("```\n" + block("get_time", {}) + "\n```\n", [("get_time", {})]),
    # a fence that closes a code block of the text before a call stays; one not at a line start too
    ("Code:\n```py\nx = 1\n```\n" + block("get_time", {}), ["Code:\n```py\nx = 1\n```", ("get_time", {})]),
    ("a ```json\n" + block("get_time", {}) + " b", ["a ```json", ("get_time", {}), " b"]),
    ("Unclosed fence, no call:\n```json\n{\"a\": 1}\n``", ["Unclosed fence, no call:\n```json\n{\"a\": 1}\n``"]),
]


@pytest.mark.parametrize("text,expected", SAMPLES)
def test_every_two_way_split_gives_the_same_result(text, expected):
    for cut in range(len(text) + 1):
        assert parse(text, cuts=[cut]) == expected, cut


@pytest.mark.parametrize("text,expected", SAMPLES)
def test_one_character_at_a_time(text, expected):
    assert parse(text, cuts=list(range(1, len(text)))) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab <>/_\n{}\"`tool_call")), max_size=60), st.data())
def test_text_without_a_valid_call_comes_out_exactly(text, data):
    """Whatever the model writes that holds no valid call comes out character for character
    (a reply starting with "{" is held whole, and then also given back whole)."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    out = parse(text, cuts=cuts)
    assert all(isinstance(piece, str) for piece in out)
    assert "".join(out) == text


prose = st.text(alphabet=st.characters(blacklist_characters="<`{", blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(prose, st.text(max_size=12), st.integers(-5, 5)), min_size=1, max_size=3), st.data())
def test_prose_and_calls_at_any_cuts(turns, data):
    """Prose then a call, a few times over, cut anywhere: the prose (less the layout whitespace
    around calls) and every call come out, in order."""
    text, expected = "", []
    for words, city, days in turns:
        text += words + "\n" + block("get_weather", {"city": city, "days": days}) + "\n"
        if words.strip():
            expected.append(words)
        expected.append(("get_weather", {"city": city, "days": days}))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    got = parse(text, cuts=cuts)
    assert [p for p in got if not isinstance(p, str)] == [p for p in expected if not isinstance(p, str)]
    assert [p.strip() for p in got if isinstance(p, str)] == [p.strip() for p in expected if isinstance(p, str)]


ATOMS = st.sampled_from(["<tool_call>", "</tool_call>", "\n", "```", "```json\n", '{"name": "get_weather", "arguments": ',
                         '{"name": "get_time"', '"city": "x"', '"days": "3"', '"unit": null', "}", "{", "]", "[", ",",
                         " ", "text", '"', "functions.", "<", "`"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(ATOMS, st.text(max_size=4)), max_size=25), st.lists(st.integers(0, 300), max_size=6),
       st.booleans())
def test_any_text_cut_anywhere_parses_as_it_does_whole(parts, cuts, parallel):
    """Pieces of the protocol in any order: feeding them cut anywhere gives what feeding them whole
    gives, every call's arguments are JSON, and without a call the text comes out exactly."""
    text = "".join(parts)
    toolset = ToolSet(TOOLS.tools, "auto", parallel=parallel)
    got = parse(text, toolset, cuts=sorted(min(cut, len(text)) for cut in cuts))
    assert got == parse(text, toolset)
    if all(isinstance(piece, str) for piece in got):
        assert "".join(got) == text


def test_text_comes_out_as_soon_as_it_cannot_open_a_call():
    parser = ToolCallParser(TOOLS)
    assert parser.feed("Hello wor") == ["Hello wor"]
    assert parser.feed("ld <b") == ["ld <b"]
    assert parser.feed(" and <tool_c") == [" and"]       # may still open a call: held
    assert parser.feed("ar is not a tag") == [" <tool_car is not a tag"]
    assert parser.feed(" end  ") == [" end"]             # trailing whitespace waits for what follows
    assert parser.finish() == ["  "]                     # no call came: it is reply text


def test_a_call_comes_out_only_when_its_block_closes():
    parser = ToolCallParser(TOOLS)
    assert parser.feed("<tool_call>\n{\"name\": \"get_time\", \"argum") == []
    assert parser.feed("ents\": {}}\n</tool_ca") == []
    [call] = parser.feed("ll>")
    assert (call.name, call.arguments) == ("get_time", "{}")
    assert parser.feed("\n") == [] and parser.finish() == []  # whitespace after calls is layout


REPAIRED = [
    ("fenced", '<tool_call>\n```json\n{"name": "get_weather", "arguments": {"city": "A"}}\n```\n</tool_call>',
     [("get_weather", {"city": "A"})]),
    ("arguments as a JSON string", '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"B\\"}"}</tool_call>',
     [("get_weather", {"city": "B"})]),
    ("openai shape", '<tool_call>{"type": "function", "function": {"name": "get_weather", '
                     '"arguments": {"city": "C"}}}</tool_call>', [("get_weather", {"city": "C"})]),
    ("parameters key", '<tool_call>{"name": "get_weather", "parameters": {"city": "D"}}</tool_call>',
     [("get_weather", {"city": "D"})]),
    ("functions. prefix and case", '<tool_call>{"name": " functions.Get_Weather", "arguments": {"city": "E"}}'
                                   '</tool_call>', [("get_weather", {"city": "E"})]),
    ("trailing comma", '<tool_call>{"name": "get_weather", "arguments": {"city": "F",},}</tool_call>',
     [("get_weather", {"city": "F"})]),
    ("missing braces", '<tool_call>{"name": "get_weather", "arguments": {"city": "G"</tool_call>',
     [("get_weather", {"city": "G"})]),
    ("no arguments for a tool that needs none", '<tool_call>{"name": "get_time"}</tool_call>', [("get_time", {})]),
    ("strings for number and boolean, null optional, extra property",
     '<tool_call>{"name": "get_weather", "arguments": {"city": "H", "days": "3", "metric": "True", '
     '"unit": null, "mood": "happy"}}</tool_call>', [("get_weather", {"city": "H", "days": 3, "metric": True})]),
    ("an array of calls in one block", '<tool_call>[{"name": "get_time", "arguments": {}}, '
                                       '{"name": "get_weather", "arguments": {"city": "I"}}]</tool_call>',
     [("get_time", {}), ("get_weather", {"city": "I"})]),
    ("two objects in one block", '<tool_call>\n{"name": "get_time", "arguments": {}}\n'
                                 '{"name": "get_weather", "arguments": {"city": "J"}}\n</tool_call>',
     [("get_time", {}), ("get_weather", {"city": "J"})]),
    ("bare JSON reply without tags", '\n{"name": "get_weather", "arguments": {"city": "K"}}\n',
     [("get_weather", {"city": "K"})]),
]


PATCH = Tool("apply_patch", "A freeform tool", {"type": "object", "properties": {"input": {"type": "string"}},
                                                  "required": ["input"], "additionalProperties": False})


@pytest.mark.parametrize("block_text", [
    '<tool_call>{"name": "apply_patch", "arguments": "*** Begin Patch\\n*** End Patch"}</tool_call>',
    '<tool_call>{"name": "apply_patch", "input": "*** Begin Patch\\n*** End Patch"}</tool_call>',
])
def test_bare_text_arguments_of_a_one_string_tool_are_its_input(block_text):
    """A freeform (custom) tool's input written as the arguments themselves: the intent is clear."""
    toolset = ToolSet((PATCH, TIME), "auto")
    assert parse(block_text, toolset) == [("apply_patch", {"input": "*** Begin Patch\n*** End Patch"})]


def test_bare_text_arguments_of_other_tools_stay_text():
    """Not for a tool with several properties, nor text that is a mangled JSON object."""
    weather = '<tool_call>{"name": "get_weather", "arguments": "Paris"}</tool_call>'
    assert parse(weather) == [weather]
    mangled = '<tool_call>{"name": "apply_patch", "arguments": "{\\"input\\": \\"x"}</tool_call>'
    assert parse(mangled, ToolSet((PATCH,), "auto")) == [mangled]


@pytest.mark.parametrize("text,expected", [case[1:] for case in REPAIRED], ids=[case[0] for case in REPAIRED])
def test_repairs_when_the_intent_is_clear(text, expected):
    assert parse(text) == expected
    assert parse(text, cuts=list(range(1, len(text)))) == expected


NOT_CALLS = [
    ("unknown tool", '<tool_call>{"name": "get_stock", "arguments": {"symbol": "X"}}</tool_call>'),
    ("arguments that do not parse", '<tool_call>{"name": "get_weather", "arguments": {city: Paris}}</tool_call>'),
    ("arguments string that does not parse", '<tool_call>{"name": "get_weather", "arguments": "city=Paris"}</tool_call>'),
    ("required property missing", '<tool_call>{"name": "get_weather", "arguments": {"days": 2}}</tool_call>'),
    ("no arguments for a tool that needs some", '<tool_call>{"name": "get_weather"}</tool_call>'),
    ("wrong type that cannot convert", '<tool_call>{"name": "get_weather", "arguments": {"city": "A", '
                                       '"days": "soon"}}</tool_call>'),
    ("enum mismatch", '<tool_call>{"name": "get_weather", "arguments": {"city": "A", "unit": "k"}}</tool_call>'),
    ("ambiguous case-folded name", None),
    ("not JSON at all", "<tool_call>call get_weather for Paris</tool_call>"),
    ("a JSON answer that is no call", '{"answer": 42}'),
    ("a call and then prose, without tags", '{"name": "get_time", "arguments": {}} and more'),
]


@pytest.mark.parametrize("case", NOT_CALLS, ids=[case[0] for case in NOT_CALLS])
def test_what_is_not_clearly_a_call_comes_back_as_its_text(case):
    name, text = case
    toolset = TOOLS
    if text is None:  # two tools that only differ in case: "GET_TIME" could be either
        toolset = ToolSet((Tool("get_Time", "", TIME.parameters), Tool("get_time", "", TIME.parameters)), "auto")
        text = '<tool_call>{"name": "GET_TIME", "arguments": {}}</tool_call>'
    text = "Answer: " + text if not text.startswith("{") else text
    assert parse(text, toolset) == [text]
    assert parse(text, toolset, cuts=list(range(1, len(text)))) == [text]


def test_a_cut_reply_leaves_its_open_block_as_text():
    for text in ('Hi\n<tool_call>\n{"name": "get_time", "arguments": {}', '{"name": "get_time", "arguments": {}}'):
        parser = ToolCallParser(TOOLS)
        out = parser.feed(text) + parser.finish(whole=False)
        assert "".join(out) == text
        parser = ToolCallParser(TOOLS)
        assert [p.name for p in parser.feed(text) + parser.finish() if not isinstance(p, str)] == ["get_time"]


def test_schemas_that_cannot_be_evaluated_or_deep_arguments_give_text_not_a_crash():
    broken = ToolSet((Tool("f", "", {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}),), "auto")
    text = '<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>'
    assert parse(text, broken) == [text]
    deep = '<tool_call>{"name": "get_time", "arguments": {"tz": ' + "[" * 50000 + "]" * 50000 + "}}</tool_call>"
    assert parse(deep) == [deep]


def test_pydantic_schemas_with_local_references():
    from pydantic import BaseModel

    class Place(BaseModel):
        city: str

    class Trip(BaseModel):
        stops: List[Place]

    toolset = ToolSet((Tool("plan", "", Trip.model_json_schema()),), "auto")
    assert parse(block("plan", {"stops": [{"city": "A"}]}), toolset) == [("plan", {"stops": [{"city": "A"}]})]
    wrong = block("plan", {"stops": [{"town": "A"}]})
    assert parse(wrong, toolset) == [wrong]


def test_one_call_only_when_parallel_calls_are_off():
    serial = ToolSet(TOOLS.tools, "auto", parallel=False)
    text = block("get_weather", {"city": "A"}) + "\n" + block("get_time", {})
    assert parse(text, serial) == [("get_weather", {"city": "A"})]
    two_in_one = '<tool_call>[{"name": "get_time", "arguments": {}}, {"name": "get_time", "arguments": {}}]</tool_call>'
    assert parse(two_in_one, serial) == [("get_time", {})]
    assert parse(text, TOOLS) == [("get_weather", {"city": "A"}), ("get_time", {})]


def test_call_ids_are_openai_shaped_and_distinct():
    ids = {new_call_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("call_") and len(i) == 29 and i[5:].isalnum() for i in ids)


# --------------------------------------------------------------------------------------------------
# The protocol text and the history (the contract of issue 15, word for word)
# --------------------------------------------------------------------------------------------------

CONTRACT_TEXT = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": PARAMS}}
{"type": "function", "function": {"name": "get_time", "description": "", "parameters": {"type": "object", "properties": {}}}}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>

"""


@pytest.mark.parametrize("toolset,sentence", [
    (TOOLS, "Call a function only when it helps; otherwise answer directly."),
    (ToolSet(TOOLS.tools, "required"), "You must call at least one function in this reply."),
    (ToolSet(TOOLS.tools, "function", forced="get_time"), "You must call the function `get_time` in this reply."),
    (ToolSet(TOOLS.tools, "auto", parallel=False),
     "Call a function only when it helps; otherwise answer directly. Call at most one function per reply."),
])
def test_protocol_text_is_the_contract(toolset, sentence):
    expected = CONTRACT_TEXT.replace("PARAMS", json.dumps(WEATHER.parameters)) + sentence
    assert protocol_text(toolset) == expected


def test_history_renders_calls_and_joins_consecutive_results():
    calls = (ToolCall("call_1", "get_weather", '{"city": "Paris"}'), ToolCall("call_2", "get_time", "not json"))
    messages = (
        ChatMessage("user", ("hi",)),
        ChatMessage("assistant", ("Checking.",), tool_calls=calls),
        ChatMessage("tool", ("sunny",), tool_call_id="call_1"),
        ChatMessage("tool", ("noon", "UTC"), tool_call_id="call_2"),
        ChatMessage("tool", ("lost",), tool_call_id="call_unknown"),
        ChatMessage("assistant", ("It is sunny.",)),
        ChatMessage("tool", ("legacy",), name="get_time"),
    )
    rendered = [(m.role, m.text) for m in render_history(messages)]
    assert rendered == [
        ("user", "hi"),
        ("assistant", 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
                      '<tool_call>\n{"name": "get_time", "arguments": "not json"}\n</tool_call>'),
        ("user", '<tool_response>\n{"name": "get_weather", "tool_call_id": "call_1", "content": "sunny"}\n</tool_response>\n'
                 '<tool_response>\n{"name": "get_time", "tool_call_id": "call_2", "content": "noon\\nUTC"}\n</tool_response>\n'
                 '<tool_response>\n{"name": null, "tool_call_id": "call_unknown", "content": "lost"}\n</tool_response>'),
        ("assistant", "It is sunny."),
        ("user", '<tool_response>\n{"name": "get_time", "tool_call_id": null, "content": "legacy"}\n</tool_response>'),
    ]


def test_history_without_tool_traffic_is_the_same_messages():
    messages = (ChatMessage("system", ("be brief",)), ChatMessage("user", ("hi <tool_call>",)),
                ChatMessage("assistant", ("hello",)))
    assert render_history(messages) == list(messages)


def test_a_call_block_parses_back_to_the_same_call():
    call = ToolCall("call_x", "get_weather", '{"city":"Zürich","days":2}')
    [piece] = parse(call_block(call))
    assert piece == ("get_weather", {"city": "Zürich", "days": 2})


# --------------------------------------------------------------------------------------------------
# Request validation: every bad shape is a 400 that names its param
# --------------------------------------------------------------------------------------------------

FN = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("extra,param", [
    ({"tools": {"type": "function"}}, "tools"),
    ({"tools": ["f"]}, "tools[0]"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "x" * 65}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "description": 3}}]}, "tools[0].function.description"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}]},
     "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]}, "tools[0].function.strict"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}}}}]},
     "tools[0].function.parameters"),
    ({"tools": [FN, FN]}, "tools"),
    ({"tools": [FN], "tool_choice": "always"}, "tool_choice"),
    ({"tools": [FN], "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
    ({"tools": [FN], "tool_choice": {"type": "function"}}, "tool_choice"),
    ({"tools": [FN], "tool_choice": 1}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [FN], "parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ({"functions": {"name": "f"}}, "functions"),
    ({"functions": ["f"]}, "functions[0]"),
    ({"functions": [{"name": "f"}], "tools": [FN]}, "functions"),
    ({"functions": [{"name": "f"}, {"name": "f"}]}, "functions"),
    ({"functions": [{"name": "f"}], "function_call": {"name": "g"}}, "function_call"),
])
def test_bad_tools_are_400s_naming_the_param(extra, param):
    with pytest.raises(ApiError) as caught:
        parse_chat_request({"model": "gpt-4o", "messages": USER, **extra})
    assert caught.value.status == 400
    assert caught.value.param == param
    assert caught.value.type == "invalid_request_error"


@pytest.mark.parametrize("message,param", [
    ({"role": "tool", "content": "x"}, "messages[1].tool_call_id"),
    ({"role": "tool", "tool_call_id": "", "content": "x"}, "messages[1].tool_call_id"),
    ({"role": "tool", "tool_call_id": "c", "content": [{"type": "image_url", "image_url": "http://a/b.png"}]},
     "messages[1].content"),
    ({"role": "tool", "tool_call_id": "c", "content": 3}, "messages[1].content"),
    ({"role": "function", "content": "x"}, "messages[1].name"),
    ({"role": "assistant", "tool_calls": {"id": "c"}}, "messages[1].tool_calls"),
    ({"role": "assistant", "tool_calls": ["c"]}, "messages[1].tool_calls[0]"),
    ({"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]},
     "messages[1].tool_calls[0].id"),
    ({"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "function": {"name": "f"}}]},
     "messages[1].tool_calls[0].type"),
    ({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"arguments": "{}"}}]},
     "messages[1].tool_calls[0].function.name"),
    ({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f",
                                                                                       "arguments": {}}}]},
     "messages[1].tool_calls[0].function.arguments"),
    ({"role": "assistant", "function_call": {"name": "f", "arguments": 1}}, "messages[1].function_call.arguments"),
])
def test_bad_tool_messages_are_400s_naming_the_param(message, param):
    with pytest.raises(ApiError) as caught:
        parse_chat_request({"model": "gpt-4o", "messages": USER + [message]})
    assert (caught.value.status, caught.value.param) == (400, param)


def test_tool_messages_parse():
    request = parse_chat_request({"model": "gpt-4o", "tools": [FN], "parallel_tool_calls": False,
                                  "tool_choice": {"type": "function", "function": {"name": "f"}}, "messages": USER + [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": [{"type": "text", "text": "r1"}, {"type": "text", "text": "r2"}]},
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "function", "name": "f", "content": "old"},
    ]})
    assert request.tools == ToolSet((Tool("f", "", FN["function"]["parameters"]),), "function", "f", parallel=False)
    assert request.messages[1].tool_calls == (ToolCall("call_a", "f", "{}"),)
    assert request.messages[2] == ChatMessage("tool", ("r1", "r2"), tool_call_id="call_a")
    assert request.messages[3].tool_calls == (ToolCall("", "f", "{}"),)
    assert request.messages[4] == ChatMessage("tool", ("old",), name="f")


def test_responses_flat_tools_share_the_parser():
    flat = {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}}
    assert parse_tools([flat], flat=True) == (Tool("f", "d", {"type": "object"}),)
    with pytest.raises(ApiError) as caught:
        parse_tools([{"type": "web_search_preview"}], flat=True)
    assert caught.value.param == "tools[0].type"
    toolset = parse_chat_tools({"tools": [flat], "tool_choice": {"type": "function", "name": "f"},
                                "parallel_tool_calls": False}, flat=True)
    assert (toolset.choice, toolset.forced, toolset.parallel) == ("function", "f", False)


def test_prompt_tokens_count_the_calls_of_the_history():
    plain = ChatMessage("assistant", ("ok",))
    calling = ChatMessage("assistant", ("ok",), tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Paris"}'),))
    assert count_prompt([calling], "o200k_base") - count_prompt([plain], "o200k_base") >= 5


def test_no_tools_and_lenient_choices():
    assert parse_chat_tools({}) is None
    assert parse_chat_tools({"tools": [], "tool_choice": "auto"}) is None
    assert parse_chat_tools({"tool_choice": "none"}) is None
    assert parse_chat_tools({"tools": [FN], "tool_choice": "none"}).choice == "none"
    default = parse_chat_tools({"tools": [FN]})
    assert (default.choice, default.forced, default.parallel) == ("auto", None, True)
    assert default.get("f").parameters == {"type": "object", "properties": {}} and default.get("g") is None


# --------------------------------------------------------------------------------------------------
# The conversation payload: tools first, then the response format, then the history
# --------------------------------------------------------------------------------------------------

def _payload_texts(body: dict, model: str) -> list:
    from backend_to_api.models import ModelRegistry
    from backend_to_api.settings import Settings
    from backend_to_api.translate.conversation import build_conversation_payload

    spec = ModelRegistry(Settings()).resolve(model)
    payload = build_conversation_payload(parse_chat_request(body), spec, hide_history=True)
    return [(m["author"]["role"], m["content"]["parts"][0]) for m in payload["messages"]]


def test_payload_order_tools_format_history():
    body = {"model": "gpt-4o", "tools": [FN], "response_format": {"type": "json_object"}, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "r"}]}
    texts = _payload_texts(body, "gpt-4o")
    assert [role for role, _ in texts] == ["system", "system", "system", "user", "assistant", "user"]
    assert texts[0][1].startswith("# Tools\n") and texts[1][1].startswith("# Response format\n")
    assert texts[2:] == [("system", "Be brief."), ("user", "hi"),
                         ("assistant", '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'),
                         ("user", '<tool_response>\n{"name": "f", "tool_call_id": "call_a", "content": "r"}\n'
                                  "</tool_response>")]
    # o1-style: every system text folded into the first user message, in the same order
    folded = _payload_texts(body, "o1-mini")
    assert [role for role, _ in folded] == ["user", "assistant", "user"]
    assert folded[0][1] == "\n\n".join(text for _, text in texts[:3]) + "\nhi"
