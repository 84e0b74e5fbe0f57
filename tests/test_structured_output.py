"""structured_output.py and json_in_text.py: the request's format, the model's instruction, the reply check."""
from __future__ import annotations

import json
import random
import time

import pytest

from backend_to_api.errors import ApiError
from backend_to_api.json_in_text import NoJson, find_json
from backend_to_api.structured_output import (
    FormatMismatch, OutputFormat, parse_response_format, parse_text_format,
)
from backend_to_api.translate.chat_request import parse_chat_request

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
    "required": ["city", "temperature"],
    "additionalProperties": False,
}


def weather_format(**extra) -> OutputFormat:
    return parse_response_format({"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER,
                                                                         "strict": True, **extra}})


# --- parsing the request ---------------------------------------------------------------------

def test_text_and_absent_formats_are_none():
    assert parse_response_format(None) is None
    assert parse_response_format({"type": "text"}) is None
    assert parse_text_format({"type": "text"}) is None


def test_json_object_and_json_schema_in_both_shapes():
    assert parse_response_format({"type": "json_object"}) == OutputFormat("json_object")
    chat = weather_format()
    assert chat == OutputFormat("json_schema", name="weather", schema=WEATHER, strict=True)
    flat = parse_text_format({"type": "json_schema", "name": "weather", "schema": WEATHER, "strict": True})
    assert flat == chat
    assert parse_response_format({"type": "json_schema", "json_schema": {"schema": WEATHER}}).name == "response"


@pytest.mark.parametrize("value, param", [
    ("json", "response_format"),
    ({"type": "xml"}, "response_format.type"),
    ({}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": {"name": "has space", "schema": WEATHER}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "x" * 65, "schema": WEATHER}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER, "strict": "yes"}},
     "response_format.json_schema.strict"),
    ({"type": "json_schema", "json_schema": {"name": "w", "schema": [1]}}, "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": 5}}}, "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"name": "w", "schema": {"$schema": ["x"]}}},
     "response_format.json_schema.schema.$schema"),
])
def test_bad_shapes_are_400s_naming_the_param(value, param):
    with pytest.raises(ApiError) as caught:
        parse_response_format(value)
    assert caught.value.status == 400 and caught.value.param == param


def test_the_responses_shape_names_its_own_param():
    with pytest.raises(ApiError) as caught:
        parse_text_format({"type": "json_schema", "name": "w", "schema": {"type": 5}})
    assert caught.value.param == "text.format.schema"


def test_the_chat_request_carries_the_format():
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    assert parse_chat_request(body).output_format is None
    request = parse_chat_request({**body, "response_format": {"type": "json_object"}})
    assert request.output_format == OutputFormat("json_object")
    with pytest.raises(ApiError):
        parse_chat_request({**body, "response_format": {"type": "yaml"}})


# --- what the model is told -------------------------------------------------------------------

def test_instruction_of_json_object():
    assert OutputFormat("json_object").instruction() == (
        "# Response format\n\n"
        "Answer with one JSON object and nothing else: no prose before or after it, no Markdown code fences.")


def test_instruction_of_json_schema_holds_the_schema_on_one_line():
    lines = weather_format().instruction().split("\n")
    assert lines[3] == "The JSON object must be valid against this JSON Schema (named weather):"
    assert lines[4] == "<json_schema>" and lines[6] == "</json_schema>" and len(lines) == 7
    assert json.loads(lines[5]) == WEATHER


def test_correction_starts_as_the_protocol_says():
    text = OutputFormat("json_object").correction("it holds no JSON object")
    assert text == ("Your previous reply was not valid: it holds no JSON object.\n\n"
                    "Answer again with the JSON object only.")


# --- the reply check --------------------------------------------------------------------------

@pytest.mark.parametrize("reply", [
    '{"city": "Paris", "temperature": 21.5}',
    '  \n{"city": "Paris", "temperature": 21.5}\n',
    'Here it is:\n```json\n{"city": "Paris", "temperature": 21.5}\n```\nAnything else?',
    '```\n{"city": "Paris", "temperature": 21.5}\n```',
    'The weather: {"city": "Paris", "temperature": 21.5} (today).',
    # the same object in a fence and repeated in prose is still one answer
    '```json\n{"city": "Paris", "temperature": 21.5}\n```\nso {"city": "Paris", "temperature": 21.5}',
])
def test_wrapped_json_is_unwrapped(reply):
    assert weather_format().check(reply) == '{"city": "Paris", "temperature": 21.5}'


@pytest.mark.parametrize("reply, reason", [
    ("It is sunny in Paris.", "holds no JSON object"),
    ("", "empty"),
    ('{"city": "Paris"} or {"city": "Lyon"}', "several different JSON objects"),
    ('```json\n{"city": "Paris"}\n```\n```json\n{"city": "Lyon"}\n```', "several different JSON code blocks"),
    ('{"city": "Paris", "temperature": "warm"}', "at $.temperature: 'warm' is not of type 'number'"),
    ('{"city": "Paris", "temperature": 1, "wind": 3}', "('wind' was unexpected)"),
    ('{"city": "Paris"}', "'temperature' is a required property"),
    ('{"city": "Paris", "temperature": NaN}', "holds no JSON object"),
])
def test_replies_that_do_not_fit_say_why(reply, reason):
    with pytest.raises(FormatMismatch) as caught:
        weather_format().check(reply)
    assert reason in caught.value.reason


def test_json_object_wants_an_object():
    assert OutputFormat("json_object").check('{"any": [1, 2]}') == '{"any": [1, 2]}'
    with pytest.raises(FormatMismatch, match="JSON array, not an object"):
        OutputFormat("json_object").check("[1, 2]")


def test_a_schema_of_another_draft_is_validated_by_its_draft():
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
              "properties": {"n": {"type": "number", "minimum": 0, "exclusiveMinimum": True}}}
    output = OutputFormat("json_schema", schema=draft4)
    assert output.check('{"n": 1}') == '{"n": 1}'
    with pytest.raises(FormatMismatch):
        output.check('{"n": 0}')  # draft 4's boolean exclusiveMinimum; 2020-12 would not read it so


def test_an_unresolvable_ref_is_the_clients_error_not_the_models():
    output = parse_response_format({"type": "json_schema", "json_schema": {
        "name": "w", "schema": {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}}}})
    with pytest.raises(ApiError) as caught:
        output.check('{"a": 1}')
    assert caught.value.status == 400 and "cannot be resolved" in caught.value.message


def test_a_long_reason_is_cut():
    schema = {"type": "object", "properties": {"a": {"enum": ["x" * 1000]}}}
    with pytest.raises(FormatMismatch) as caught:
        OutputFormat("json_schema", schema=schema).check('{"a": "y"}')
    assert len(caught.value.reason) <= 400 and caught.value.reason.endswith("...")


def test_many_braces_are_searched_in_bounded_time():
    text = "{" * 50_000 + " no JSON here"
    started = time.monotonic()
    with pytest.raises(NoJson):
        find_json(text)
    assert time.monotonic() - started < 2.0


def test_find_json_returns_the_exact_text_of_the_value():
    assert find_json('Result: {"a": [1, {"b": "}"}]} done') == ('{"a": [1, {"b": "}"}]}', {"a": [1, {"b": "}"}]})


ATOMS = [None, True, False, 0, 1, -1.5, "", "x", "object", "array", "string", "#/x", "#", [], {},
         "http://json-schema.org/draft-04/schema#"]
KEYS = ["type", "properties", "$ref", "items", "required", "additionalProperties", "$schema", "enum",
        "pattern", "minimum", "$defs", "$id", "allOf", "anyOf", "not", "if", "then", "$dynamicRef"]


def random_json(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 4 or roll < 0.4:
        return rng.choice(ATOMS)
    if roll < 0.6:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_random_schemas_and_replies_only_ever_give_400s_or_mismatches():
    """Found by this fuzzing: a non-string $schema made jsonschema raise TypeError."""
    rng = random.Random(15)
    for _ in range(3000):
        value = {"type": "json_schema", "json_schema": {"name": "n", "schema": random_json(rng)}}
        try:
            output = parse_response_format(value)
            output.check(json.dumps(random_json(rng)))
        except (ApiError, FormatMismatch):
            pass
