"""Token counts with tiktoken, offline.

tiktoken downloads its BPE files on first use, and this service has no internet at run time. The
two encodings we need ship in ``backend_to_api/data/tiktoken`` under the names tiktoken's cache uses
(sha1 of the download URL); tiktoken verifies their sha256 when it loads them. Pointing
TIKTOKEN_CACHE_DIR there (tiktoken's documented cache setting) makes the normal loader find them.

Only tiktoken's public API: the Encoding keeps its Python copy of the ranks (o200k: ~26 MB a
worker, measured) beside the Rust tokenizer that counts; dropping it meant deleting a private
attribute, which a tiktoken release may rely on.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from functools import lru_cache
from typing import Iterable

import tiktoken

from ..translate.chat_request import ChatMessage

log = logging.getLogger(__name__)

ENCODINGS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "tiktoken")

# Loaded when a worker starts: the tokenizer of gpt-4o, gpt-4o-mini and o1, what clients ask for by
# default. cl100k_base (gpt-3.5, gpt-4; +23 MB a worker) still loads on its first use.
PRELOADED = ("o200k_base",)

# OpenAI's documented accounting for chat models: each message costs 3 tokens of framing and the
# reply is primed with 3 more (openai-cookbook, "How to count tokens with tiktoken").
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
# An image or file part: its text is not ours to count (the upstream reads it), so a flat estimate,
# OpenAI's price of one low-detail image. Without it a picture-only prompt would count as free.
TOKENS_PER_FILE = 85

_load_lock = threading.Lock()


@lru_cache(maxsize=None)
def encoding(name: str) -> tiktoken.Encoding:
    with _load_lock:
        os.environ["TIKTOKEN_CACHE_DIR"] = ENCODINGS_DIR
        return tiktoken.get_encoding(name)


def preload(names: Iterable[str] = PRELOADED) -> None:
    """Load tokenizers now, as a worker starts, not on the first chat that counts tokens: o200k takes
    ~0.6 s of CPU to load, during which a gevent worker serves none of its other streams."""
    for name in names:
        started = time.monotonic()
        encoding(name)
        log.info("tokenizer %s loaded in %.2f s", name, time.monotonic() - started)


def count_text(text: str, encoding_name: str) -> int:
    if not text:
        return 0
    # Special-token text counts as the plain text it is (tiktoken: the same as disallowed_special=()).
    return len(encoding(encoding_name).encode_ordinary(text))


def count_prompt(messages: Iterable[ChatMessage], encoding_name: str) -> int:
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_text(message.role, encoding_name) + count_text(message.text, encoding_name)
        total += TOKENS_PER_FILE * len(message.images)
        for call in message.tool_calls:  # an assistant turn's calls are text the model reads again
            total += count_text(call.name, encoding_name) + count_text(call.arguments, encoding_name)
    return total


def usage(prompt_tokens: int, completion_text: str, encoding_name: str) -> dict:
    completion = count_text(completion_text, encoding_name)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}
