"""Responses input items -> chat messages, and the max_output_tokens cut (pure functions)."""
from __future__ import annotations

import json

import pytest

from backend_to_api.errors import ApiError
from backend_to_api.render.usage import count_text
from backend_to_api.responses.items import items_to_messages
from backend_to_api.responses.tokens import TokenBudget
from backend_to_api.translate.chat_request import ImagePart


def test_text_and_calls_of_one_turn_are_one_assistant_message():
    messages = items_to_messages([
        {"role": "user", "content": "Weather in two cities?"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "call_a", "name": "w", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call", "call_id": "call_b", "name": "w", "arguments": '{"city": "Rome"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "cold"},
        {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "warm"}]},
    ])
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool"]
    assistant = messages[1]
    assert assistant.text == "Checking." and [c.id for c in assistant.tool_calls] == ["call_a", "call_b"]
    assert [(m.tool_call_id, m.text) for m in messages[2:]] == [("call_a", "cold"), ("call_b", "warm")]


def test_a_call_without_text_before_it_is_an_assistant_turn_of_its_own():
    messages = items_to_messages([{"role": "user", "content": "x"},
                                  {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}])
    assert messages[1].role == "assistant" and messages[1].text == "" and messages[1].tool_calls[0].name == "f"


def test_images_and_files_become_chat_file_parts():
    [message] = items_to_messages([{"role": "user", "content": [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"},
        {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}]}])
    assert message.parts == ("look", ImagePart("https://example.com/a.png", "high"),
                             ImagePart("data:application/pdf;base64,JVBERi0="))


@pytest.mark.parametrize("item, param", [
    ({"type": "input_file", "file_data": "JVBERi0="}, "input[0].content[0].file_data"),
    ({"type": "input_file"}, "input[0].content[0]"),
    ({"type": "input_image", "image_url": "ftp://x/a.png"}, "input[0].content[0].image_url"),
])
def test_bad_parts_name_their_place(item, param):
    with pytest.raises(ApiError) as error:
        items_to_messages([{"role": "user", "content": [item]}])
    assert error.value.status == 400 and error.value.param == param


@pytest.mark.parametrize("text, piece", [
    ("The quick brown fox jumps over the lazy dog. " * 40, 5),
    ("我们今天去公园散步，天气很好。" * 40, 3),  # no spaces: the recount is bounded, the cut still right
])
def test_the_budget_cuts_at_the_limit(text, piece):
    budget = TokenBudget(57, "o200k_base")
    taken = "".join(budget.take(text[i:i + piece]) for i in range(0, len(text), piece))
    assert budget.exhausted and text.startswith(taken)
    assert count_text(taken, "o200k_base") == 57


def test_no_limit_takes_everything():
    budget = TokenBudget(None, "o200k_base")
    assert budget.take("anything at all") == "anything at all" and not budget.exhausted


def test_custom_tool_calls_and_outputs_are_calls_and_results():
    messages = items_to_messages([
        {"role": "user", "content": "patch"},
        {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_p", "name": "apply_patch", "input": "+a\n"},
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"},
    ])
    assert [m.role for m in messages] == ["user", "assistant", "tool"]
    [call] = messages[1].tool_calls
    assert (call.id, call.name, json.loads(call.arguments)) == ("call_p", "apply_patch", {"input": "+a\n"})
    assert (messages[2].tool_call_id, messages[2].text) == ("call_p", "Done!")
    with pytest.raises(ApiError) as error:
        items_to_messages([{"type": "custom_tool_call", "call_id": "c", "name": "n", "input": 3}])
    assert error.value.param == "input[0].input"


def test_images_a_tool_returned_follow_the_run_of_results():
    image = {"type": "input_image", "image_url": "https://example.com/a.png"}
    messages = items_to_messages([
        {"role": "user", "content": "x"},
        {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": [{"type": "input_text", "text": "A"}, image]},
        {"type": "reasoning", "summary": []},
        {"type": "function_call_output", "call_id": "b", "output": "B"},
        {"role": "user", "content": "next"},
    ])
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool", "user", "user"]
    assert [m.text for m in messages[2:4]] == ["A", "B"] and not messages[2].images
    files = messages[4]
    assert files.images == (ImagePart(url="https://example.com/a.png"),) and "call a" in files.text
    assert messages[5].text == "next"
