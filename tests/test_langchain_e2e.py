"""LangChain's ChatOpenAI against the proxy (issue 15 item 4): bind_tools, a whole tool loop with
ToolMessages, streamed tool_call_chunks, and with_structured_output, the emulated model following
the tool / format protocol (tests/emulator/protocol_model.py)."""
from __future__ import annotations

import json
from typing import List, Literal, Optional

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from .conftest import directive


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """The current weather in a city."""
    return f"{city}: 21 degrees {unit}, sunny"


@tool
def get_time(zone: str) -> str:
    """The local time in a time zone."""
    return f"12:00 in {zone}"


TOOLS = {"get_weather": get_weather, "get_time": get_time}


class Address(BaseModel):
    street: str
    number: int = Field(ge=1)


class Person(BaseModel):
    """A person with an address (a nested model: the schema has $defs)."""
    name: str
    kind: Literal["friend", "colleague"]
    address: Address
    nickname: Optional[str]
    tags: List[str]


class Echo(BaseModel):
    echo: str


@pytest.fixture
def llm(proxy, emulator):
    emulator.reset()
    return ChatOpenAI(base_url=proxy.url + "/v1", api_key="rt-langchain", model="gpt-4o",
                      max_retries=0, timeout=30)


def _upstream_texts(emulator) -> List[tuple]:
    """(role, text) of each message of the last conversation POST."""
    payload = emulator.conversations()[-1]["json"]
    return [(m["author"]["role"], "\n".join(p for p in m["content"]["parts"] if isinstance(p, str)))
            for m in payload["messages"]]


def test_bind_tools_invoke_returns_the_tool_calls(llm, emulator):
    plan = [[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
             {"name": "get_time", "arguments": {"zone": "Europe/Paris"}}]]
    reply = llm.bind_tools([get_weather, get_time]).invoke(directive(emu="agent", plan=plan, say="Checking."))
    assert isinstance(reply, AIMessage)
    assert [(call["name"], call["args"]) for call in reply.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}), ("get_time", {"zone": "Europe/Paris"})]
    assert all(call["id"].startswith("call_") for call in reply.tool_calls)
    assert reply.content == "Checking."
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    system = _upstream_texts(emulator)[0]
    assert system[0] == "system" and '"name": "get_time"' in system[1] and "<tools>" in system[1]


def test_a_tool_loop_with_tool_messages_ends_in_an_answer(llm, emulator):
    plan = [[{"name": "get_weather", "arguments": {"city": "Oslo"}}],
            [{"name": "get_time", "arguments": {"zone": "CET"}}]]
    bound = llm.bind_tools([get_weather, get_time])
    messages = [SystemMessage("You are terse."),
                HumanMessage(directive(emu="agent", plan=plan, text="Answer: {results}"))]
    rounds = 0
    while True:
        reply = bound.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        rounds += 1
        for call in reply.tool_calls:
            messages.append(ToolMessage(TOOLS[call["name"]].invoke(call["args"]), tool_call_id=call["id"]))
    assert rounds == 2
    assert reply.content == "Answer: 12:00 in CET"
    # The last upstream turn carried the whole history: both calls and both results, named.
    texts = _upstream_texts(emulator)
    assert [role for role, _ in texts] == ["system", "system", "user", "assistant", "user", "assistant", "user"]
    assert json.loads(texts[3][1].split("\n")[1]) == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    result = json.loads(texts[4][1].removeprefix("<tool_response>\n").removesuffix("\n</tool_response>"))
    assert result["name"] == "get_weather" and result["content"] == "Oslo: 21 degrees celsius, sunny"
    assert result["tool_call_id"] == messages[2].tool_calls[0]["id"]


def test_stream_with_tools_accumulates_tool_call_chunks(llm):
    plan = [[{"name": "get_time", "arguments": {"zone": "Asia/Tokyo"}},
             {"name": "get_weather", "arguments": {"city": "Kyoto", "unit": "fahrenheit"}}]]
    text = directive(emu="agent", plan=plan, say="Two calls.", chunk=2)
    chunks = list(llm.bind_tools([get_weather, get_time]).stream(text))
    assert len(chunks) > 3 and all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    whole = sum(chunks[1:], chunks[0])
    assert [chunk["index"] for chunk in whole.tool_call_chunks] == [0, 1]
    assert [(call["name"], call["args"]) for call in whole.tool_calls] == [
        ("get_time", {"zone": "Asia/Tokyo"}), ("get_weather", {"city": "Kyoto", "unit": "fahrenheit"})]
    assert whole.content == "Two calls."
    assert whole.response_metadata["finish_reason"] == "tool_calls"
    # No chunk carries the protocol's tags as text.
    assert not any("<tool_call>" in str(chunk.content) for chunk in chunks)


def test_with_structured_output_default_method_gives_the_pydantic_object(llm, emulator):
    person = llm.with_structured_output(Person).invoke("Describe a friend of mine.")
    assert isinstance(person, Person)
    assert person == Person(name="x", kind="friend", address=Address(street="x", number=1),
                            nickname="x", tags=[])
    system = _upstream_texts(emulator)[0]
    assert system[0] == "system" and "<json_schema>" in system[1] and "$defs" in system[1]


def test_with_structured_output_json_mode(llm):
    echo = llm.with_structured_output(Echo, method="json_mode").invoke("Name a colour")
    assert echo == Echo(echo="Name a colour")


def test_with_structured_output_retries_a_mismatching_reply_once(llm, emulator):
    person = llm.with_structured_output(Person).invoke(directive(emu="agent", bad_first=True, fence=True))
    assert isinstance(person, Person)
    assert len(emulator.conversations()) == 2
    correction = _upstream_texts(emulator)[-1]
    assert correction[0] == "user" and correction[1].startswith("Your previous reply was not valid:")


def test_with_structured_output_function_calling_forces_the_tool(llm, emulator):
    person = llm.with_structured_output(Person, method="function_calling").invoke("Describe someone.")
    assert person == Person(name="x", kind="friend", address=Address(street="x", number=1),
                            nickname="x", tags=[])
    assert "You must call the function `Person` in this reply." in _upstream_texts(emulator)[0][1]


def test_a_reasoning_model_gets_the_protocol_folded_into_the_user_turn(proxy, emulator):
    emulator.reset()
    llm = ChatOpenAI(base_url=proxy.url + "/v1", api_key="rt-langchain", model="o1-preview",
                     max_retries=0, timeout=30)
    reply = llm.bind_tools([get_weather, get_time]).invoke("Weather in Rome?")
    assert [(call["name"], call["args"]) for call in reply.tool_calls] == [
        ("get_weather", {"city": "x"})]  # the emulator fills the required properties
    roles = [role for role, _ in _upstream_texts(emulator)]
    assert roles == ["user"]
