"""Validate a Responses API body (POST /v1/responses) into a ResponsesRequest; every problem a 400.

What the web model cannot honour is said, not pretended: ``max_output_tokens`` is applied by
cutting the reply (status ``incomplete``), ``temperature``/``top_p`` are echoed and ignored (as
chat does), and features that would need state or tools we do not have (``conversation``,
``background``, ``prompt`` templates, hosted tools other than the web model's own: tools.py) are
400s naming the field. Fields that
change nothing a client relies on (``include``, ``truncation``, ``user``, ``service_tier``,
``prompt_cache_key``, ...) are accepted and ignored: the Agents SDK sends several of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Mapping, Optional, Sequence, Tuple

from ..errors import ApiError, bad_request
from ..structured_output import OutputFormat, parse_text_format
from ..tool_calls.toolset import ToolSet
from ..translate.chat_request import ChatMessage, ChatRequest
from ..translate.thinking import parse_reasoning_effort
from .items import items_to_messages, normalize_input
from .tools import ResponsesTools, parse_tools

# Fields that ask for a feature we do not have: refused, since ignoring them would lose what the
# client relies on. Other unknown fields are ignored (clients send new ones before we know them).
UNSUPPORTED = {
    "conversation": "the Conversations API is not available; continue with previous_response_id",
    "prompt": "stored prompt templates are not available; send instructions and input",
    "background": "background responses are not available; use stream",
}
METADATA_MAX_PAIRS = 16


@dataclass(frozen=True)
class ResponsesRequest:
    model: str
    input_items: Tuple[dict, ...]    # as the client sent them (kept for previous_response_id)
    messages: Tuple[ChatMessage, ...]  # the same, as chat messages (already validated)
    instructions: Optional[str]
    stream: bool
    store: bool
    previous_response_id: Optional[str]
    tools: Optional[ToolSet]
    custom_tools: FrozenSet[str]      # the tools among them that are custom (freeform), tools.py
    output_format: Optional[OutputFormat]
    reasoning_effort: Optional[str]   # the upstream's word (thinking.py)
    max_output_tokens: Optional[int]
    echo: Dict[str, Any]              # the request fields a Response repeats

    def chat_request(self, history: Sequence[ChatMessage] = ()) -> ChatRequest:
        """The ChatRequest of this turn: the instructions first (never carried over from an earlier
        response, as at OpenAI), then the earlier turns, then this input."""
        if not any(message.role != "system" for message in tuple(history) + self.messages):
            raise bad_request("'input' must hold at least one message or function call output (the "
                              "model has nothing to answer).", param="input")
        system = (ChatMessage(role="system", parts=(self.instructions,)),) if self.instructions else ()
        return ChatRequest(model=self.model, messages=system + tuple(history) + self.messages, stream=self.stream,
                           include_usage=False, reasoning_effort=self.reasoning_effort, tools=self.tools,
                           output_format=self.output_format)


def parse_responses_request(body: Any, max_files: Optional[int] = None) -> ResponsesRequest:
    if not isinstance(body, Mapping):
        raise bad_request("The request body must be a JSON object.")
    for field, why in UNSUPPORTED.items():
        if body.get(field) not in (None, False):
            raise bad_request(f"'{field}' is not supported: {why}.", param=field)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("You must provide a model parameter.", param="model")
    if body.get("input") is None:
        raise bad_request("'input' is required: a string or an array of input items.", param="input")
    items = normalize_input(body.get("input"))
    messages = tuple(items_to_messages(items))
    _check_files(messages, max_files)
    offered = parse_tools(body)
    output_format = parse_text_format(_text_format(body.get("text")))
    effort = _effort(body.get("reasoning"))
    base = dict(
        model=model.strip(), input_items=tuple(items), messages=messages,
        instructions=_optional_str(body, "instructions"), stream=_flag(body, "stream", False),
        store=_flag(body, "store", True), previous_response_id=_optional_str(body, "previous_response_id"),
        tools=offered.toolset, custom_tools=offered.custom, output_format=output_format, reasoning_effort=effort,
        max_output_tokens=_max_output_tokens(body.get("max_output_tokens")),
    )
    return ResponsesRequest(**base, echo=_echo(body, base, offered))


def _flag(body: Mapping, name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"'{name}' must be a boolean.", param=name)
    return value


def _optional_str(body: Mapping, name: str) -> Optional[str]:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"'{name}' must be a string.", param=name)
    return value or None


def _text_format(text: Any) -> Any:
    if text is None:
        return None
    if not isinstance(text, Mapping):
        raise bad_request("'text' must be an object such as {\"format\": {\"type\": \"json_schema\", ...}}.",
                          param="text")
    return text.get("format")


def _effort(reasoning: Any) -> Optional[str]:
    if reasoning is None:
        return None
    if not isinstance(reasoning, Mapping):
        raise bad_request("'reasoning' must be an object such as {\"effort\": \"high\"}.", param="reasoning")
    try:
        return parse_reasoning_effort(reasoning.get("effort"))
    except ApiError as exc:
        exc.param = "reasoning.effort"
        raise


def _max_output_tokens(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request("'max_output_tokens' must be a positive integer.", param="max_output_tokens")
    return value


def _check_files(messages: Sequence[ChatMessage], max_files: Optional[int]) -> None:
    files = sum(len(message.images) for message in messages)
    if max_files is not None and files > max_files:
        raise bad_request(f"The request carries {files} images or files; at most {max_files} are accepted.",
                          param="input", code="too_many_files")


def _metadata(value: Any) -> Dict[str, str]:
    if value is None:
        return {}
    if (not isinstance(value, Mapping) or len(value) > METADATA_MAX_PAIRS
            or not all(isinstance(key, str) and isinstance(item, str) for key, item in value.items())):
        raise bad_request(f"'metadata' must be an object of at most {METADATA_MAX_PAIRS} string values.",
                          param="metadata")
    return dict(value)


def _number(body: Mapping, name: str) -> float:
    value = body.get(name)
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_request(f"'{name}' must be a number.", param=name)
    return value


def _echo(body: Mapping, fields: Mapping[str, Any], offered: ResponsesTools) -> Dict[str, Any]:
    """What a Response says about the request that made it (OpenAI's Response fields). Fields that
    change nothing here are repeated as sent when they have the type OpenAI's answer has (a client
    may read them back), else left at OpenAI's default."""
    tools: Optional[ToolSet] = fields["tools"]
    text = body.get("text") if isinstance(body.get("text"), Mapping) else {}
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), Mapping) else {}
    return {
        "instructions": fields["instructions"],
        "max_output_tokens": fields["max_output_tokens"],
        "metadata": _metadata(body.get("metadata")),
        "parallel_tool_calls": tools.parallel if tools else body.get("parallel_tool_calls") is not False,
        "previous_response_id": fields["previous_response_id"],
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": fields["store"],
        "temperature": _number(body, "temperature"),
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": offered.choice_echo,
        "tools": list(offered.echo),
        "top_p": _number(body, "top_p"),
        "service_tier": "default",  # the web backend has one tier, whatever was asked
        **_ignored_but_echoed(body),
    }


def _ignored_but_echoed(body: Mapping) -> Dict[str, Any]:
    """Fields accepted and ignored, repeated as sent when OpenAI's answer could hold them."""
    def given(name: str, fits: Any, default: Any) -> Any:
        value = body.get(name)
        return value if fits(value) else default

    def is_str(value: Any) -> bool:
        return isinstance(value, str)

    return {
        "truncation": given("truncation", lambda value: value in ("auto", "disabled"), "disabled"),
        "user": given("user", is_str, None),
        "prompt_cache_key": given("prompt_cache_key", is_str, None),
        "safety_identifier": given("safety_identifier", is_str, None),
        "top_logprobs": given("top_logprobs", lambda value: type(value) is int and 0 <= value <= 20, 0),
    }
