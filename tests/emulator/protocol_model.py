"""The emulated model that follows the proxy's tool-call and response-format protocol (issue 15).

When a conversation carries the protocol (protocol_prompt.py) and the user's last own message
is plain text or an `{"emu": "agent", ...}` directive, the model answers in the protocol:

- while the round (how many `<tool_response>` user messages follow that user message) is below
  the plan's length, it says `say` and the `<tool_call>` blocks of plan[round];
- after the plan, it answers JSON when a response format is asked for, else `text` with
  `{results}` = the last round's tool_response contents joined by "; " ("Done: {results}").

Without a directive the plan is one round calling the forced tool, else the first offered one,
with arguments synthesized from its schema (schema_instance.py). Any other directive in that user
message plays its scenario as usual, so a test can make the model say exact raw text. The reply
streams as the `text` scenario (or `thinking`, with `think`) with the directive's chunk,
interval and encoding, so tags are split across events (scenario `agent` in scenarios.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import Any

import jsonschema

from .directive import Directive, DirectiveError, directive_for
from .protocol_prompt import Prompt, is_correction, read_prompt, tool_results, user_words
from .schema_instance import instance

AGENT = "agent"
DEFAULT_TEXT = next(f.default for f in fields(Directive) if f.name == "text")
DONE_TEXT = "Done: {results}"
NOT_JSON = "Sorry, I can only describe it in words: the answer has a name and a size."
FENCE_LEAD = "Here is the JSON you asked for:"
# Tried in turn for a reply that must not match a json_schema: the first the schema refuses.
MISMATCHES = ({"unexpected": "not what the schema asks for"}, [], "not an object")


@dataclass(frozen=True)
class Turn:
    """Where the conversation stands for the model: the protocol and the user's last own words."""
    prompt: Prompt
    words: str | None  # the last plain user message's text, protocol sections cut out
    rounds: int = 0  # tool_response messages after it
    results: tuple[str, ...] = ()  # the last of them: each result's content
    corrections: int = 0  # structured-output retries after it


def read_turn(messages: list[dict]) -> Turn:
    """The protocol from every message; the user's turn found walking back over tool results and
    retry corrections (never taken for the user's words)."""
    texts = [_text(message) for message in messages]
    prompt = read_prompt(texts)
    rounds = corrections = 0
    results: tuple[str, ...] | None = None
    for message, text in reversed(list(zip(messages, texts))):
        if message["author"]["role"] != "user":
            continue
        words = user_words(text)
        found = tool_results(words)
        if found is not None:
            rounds += 1
            results = found if results is None else results
        elif is_correction(words):
            corrections += 1
        elif words or not text.strip():  # (one that only held the folded prompt is not the user's)
            return Turn(prompt, words, rounds, results or (), corrections)
    return Turn(prompt, None, rounds, results or (), corrections)


def _text(message: dict) -> str:
    return "\n".join(part for part in message["content"]["parts"] if isinstance(part, str))


def protocol_directive(messages: list[dict]) -> Directive | None:
    """What the model plays for this conversation, or None: not the protocol's business (the
    last user message's directive applies as always)."""
    turn = read_turn(messages)
    directive = _directive(turn.words or "", quiet=not turn.prompt.active)
    if directive is not None and directive.emu != AGENT:
        return directive if turn.prompt.active else None
    if directive is None and not turn.prompt.active:
        return None
    directive = directive or Directive(emu=AGENT)
    return replace(directive, text=reply_text(turn, directive))


def _directive(words: str, quiet: bool) -> Directive | None:
    """The directive in the user's words, None for plain text. A directive may follow the user's
    own system text in a folded message, so it is looked for at the start of any line."""
    start = 0 if words.startswith('{"emu"') else words.find('\n{"emu"') + 1
    if not words.startswith('{"emu"', start):
        return None
    try:
        return directive_for(words[start:])
    except DirectiveError:
        if quiet:  # not a protocol conversation: the usual path reads and refuses it
            return None
        raise


def reply_text(turn: Turn, directive: Directive) -> str:
    """The whole reply: this round's calls, or the JSON answer, or the final text."""
    plan = directive.plan if directive.plan is not None else _default_plan(turn.prompt)
    if turn.rounds < len(plan):
        return _calls(directive.say, plan[turn.rounds])
    if turn.prompt.format is not None:
        return _json_answer(turn, directive)
    template = DONE_TEXT if directive.text == DEFAULT_TEXT else directive.text
    return template.replace("{results}", "; ".join(turn.results))


def _default_plan(prompt: Prompt) -> list[list[dict]]:
    if not prompt.tools:
        return []
    name = prompt.forced or prompt.tools[0].get("name", "")
    tool = prompt.tool(name) or {}
    parameters = tool.get("parameters") or {"type": "object", "properties": {}}
    return [[{"name": name, "arguments": instance(parameters)}]]


def _calls(say: str, calls: list[dict]) -> str:
    blocks = [call["raw"] if "raw" in call else call_block(call["name"], call["arguments"])
              for call in calls]
    return "\n".join(([say] if say else []) + blocks)


def call_block(name: str, arguments: Any) -> str:
    """One call as the protocol writes it (the tests build expected texts with this too)."""
    call = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{call}\n</tool_call>"


def _json_answer(turn: Turn, directive: Directive) -> str:
    bad = directive.always_bad or (directive.bad_first and turn.corrections == 0)
    answer = _mismatch(turn.prompt) if bad else json.dumps(valid_answer(turn), ensure_ascii=False)
    return f"{FENCE_LEAD}\n```json\n{answer}\n```" if directive.fence else answer


def valid_answer(turn: Turn) -> Any:
    """json_object: the user's words echoed; json_schema: an instance of the schema."""
    if turn.prompt.format == "json_schema":
        return instance(turn.prompt.schema)
    return {"echo": turn.words or ""}


def _mismatch(prompt: Prompt) -> str:
    """A reply the check must refuse: JSON the schema rejects, else prose."""
    if prompt.format == "json_schema":
        validator = jsonschema.validators.validator_for(prompt.schema)(prompt.schema)
        for value in MISMATCHES:
            if not validator.is_valid(value):
                return json.dumps(value)
    return NOT_JSON

