"""Token accounting of a response: its usage block, and the ``max_output_tokens`` cut.

The web model has no output limit we can set, so ``max_output_tokens`` is applied here: the reply's
text is counted as it comes (tiktoken, the model's encoding) and cut at the limit; the response is then ``incomplete`` with
``incomplete_details.reason: "max_output_tokens"``, as OpenAI's is. Function calls are counted but
never cut (half a call is no call), and thinking is not counted against the limit.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

from ..render.usage import count_prompt, count_text, encoding
from ..translate.chat_request import ChatMessage

LONGEST_TAIL = 200  # characters recounted at most with each piece


class TokenBudget:
    def __init__(self, limit: Optional[int], encoding_name: str) -> None:
        self.limit = limit
        self.encoding_name = encoding_name
        self.exhausted = False
        self._spent = 0   # tokens of the text taken so far, but for its last word
        self._tail = ""   # that last word: the next piece may still join it into other tokens

    def take(self, text: str) -> str:
        """The part of ``text`` that fits ("" once the limit is reached). Counts stay exact without
        re-encoding the whole reply for every piece: tokens do not cross the start of a word (the
        encodings split text at spaces first), so only the last word is counted again."""
        if self.limit is None:
            return text
        if self.exhausted:
            return ""
        joined = self._tail + text
        cut = max(joined.rfind(" "), joined.rfind("\n"))
        if cut <= 0 and len(joined) > LONGEST_TAIL:  # text without spaces (Chinese): bound the recount,
            cut = len(joined) - LONGEST_TAIL // 10   # at the price of a token counted twice at most
        head, tail = (joined[:cut], joined[cut:]) if cut > 0 else ("", joined)
        spent = self._spent + count_text(head, self.encoding_name)
        if spent + count_text(tail, self.encoding_name) <= self.limit:
            self._spent, self._tail = spent, tail
            return text
        self.exhausted = True
        tokens = encoding(self.encoding_name).encode_ordinary(joined)[:self.limit - self._spent]
        kept = encoding(self.encoding_name).decode_bytes(tokens).decode("utf-8", "ignore")
        return kept[len(self._tail):]

    def spend(self, text: str) -> None:
        """Count text that is never cut (a function call's arguments)."""
        if self.limit is not None:
            self._spent += count_text(text, self.encoding_name)


def response_usage(messages: Iterable[ChatMessage], output: Iterable[Dict[str, Any]], encoding_name: str) -> dict:
    """The Responses API's usage block. ``messages``: what the upstream reads (our tools and format
    text included, translate.conversation.sent_messages). Output tokens count the output items'
    text, call arguments and thinking; the web backend reports no counts of its own, so these are
    tiktoken's."""
    input_tokens = count_prompt(messages, encoding_name)
    answer, reasoning = [], []
    for item in output:
        if item["type"] == "message":
            answer.extend(part["text"] for part in item["content"])
        elif item["type"] == "function_call":
            answer.append(item["name"] + item["arguments"])
        elif item["type"] == "custom_tool_call":
            answer.append(item["name"] + item["input"])
        elif item["type"] == "reasoning":
            reasoning.extend(part["text"] for part in item["summary"])
    reasoning_tokens = count_text("".join(reasoning), encoding_name)
    output_tokens = count_text("".join(answer), encoding_name) + reasoning_tokens
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }
