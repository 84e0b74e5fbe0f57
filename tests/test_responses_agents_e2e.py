"""The openai Agents SDK (openai-agents) running an agent through the proxy's Responses API: the
agent calls two tools in two rounds and answers with their results, streamed and not."""
from __future__ import annotations

import asyncio

import agents
import openai
import pytest

from .conftest import directive

PLAN = [[{"name": "city_of", "arguments": {"person": "Ada"}}],
        [{"name": "weather_in", "arguments": {"city": "London"}}]]
ANSWER = "Ada lives where it is {results}."


@pytest.fixture
def agent(proxy):
    agents.set_tracing_disabled(True)  # no internet: the SDK would export traces to OpenAI
    calls = []

    @agents.function_tool
    def city_of(person: str) -> str:
        """The city a person lives in."""
        calls.append(("city_of", person))
        return "London"

    @agents.function_tool
    def weather_in(city: str) -> str:
        """Today's weather in a city."""
        calls.append(("weather_in", city))
        return f"rainy in {city}"

    client = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="rt-agents", max_retries=0, timeout=30)
    model = agents.OpenAIResponsesModel(model="gpt-4o", openai_client=client)
    built = agents.Agent(name="helper", instructions="Use the tools, then answer.", model=model,
                         tools=[city_of, weather_in])
    return built, calls


def test_agent_calls_two_tools_and_answers(agent, emulator):
    built, calls = agent
    result = agents.Runner.run_sync(built, directive(emu="agent", plan=PLAN, text=ANSWER))
    assert calls == [("city_of", "Ada"), ("weather_in", "London")]
    assert result.final_output == "Ada lives where it is rainy in London."
    # the last turn carried both rounds back to the model: calls as assistant turns, results as user turns
    turns = [(m["author"]["role"], m["content"]["parts"][0]) for m in emulator.conversations()[-1]["json"]["messages"]]
    said = [text for role, text in turns if role == "assistant"]
    assert len(said) == 2 and '"name": "city_of"' in said[0] and '"name": "weather_in"' in said[1]
    assert [role for role, text in turns if "<tool_response>" in text] == ["user", "user"]
    assert ("system", "Use the tools, then answer.") in turns


def test_agent_streamed(agent):
    built, calls = agent

    async def run():
        streamed = agents.Runner.run_streamed(built, directive(emu="agent", plan=PLAN, text=ANSWER, chunk=2))
        deltas = []
        async for event in streamed.stream_events():
            if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
                deltas.append(event.data.delta)
        return streamed.final_output, "".join(deltas)

    final, streamed_text = asyncio.run(run())
    assert calls == [("city_of", "Ada"), ("weather_in", "London")]
    assert final == "Ada lives where it is rainy in London." == streamed_text
