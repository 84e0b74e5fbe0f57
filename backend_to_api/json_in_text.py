"""The one JSON value a model's reply means, found in its text.

A web model asked for JSON only still wraps it now and then: a ```json fence, a sentence before or
after it. Those wrappings are taken off when exactly one JSON value is meant; anything less clear
(no JSON, several different objects) is a ``NoJson`` with a reason the model can act on.
"""
from __future__ import annotations

import json
import re
from typing import Any, List, Optional, Tuple

# A fenced block: ``` or ```json (any info word), its body, the closing ```.
_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+.-]*[ \t]*\r?\n(.*?)\r?\n?[ \t]*```", re.DOTALL)
# Prose is searched from at most this many "{": a reply with more that is not one JSON value is not
# clearly meant, and each attempt can read to the end of the text.
MAX_OBJECT_STARTS = 200


class NoJson(ValueError):
    """The text holds no single JSON value; ``reason`` says why, in words for the model."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python's json would accept them


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _parse_whole(text: str) -> Optional[Tuple[str, Any]]:
    """(text, value) when all of ``text`` (stripped) is one JSON value, else None."""
    text = text.strip()
    if not text:
        return None
    try:
        value, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        return None
    return (text, value) if end == len(text) else None


def find_json(text: str) -> Tuple[str, Any]:
    """The JSON text the reply means and its value: the whole reply, else the one fenced block that
    is JSON, else the one JSON object in the prose. Raises NoJson."""
    whole = _parse_whole(text)
    if whole is not None:
        return whole
    fenced = _distinct([found for found in map(_parse_whole, _FENCE.findall(text)) if found is not None])
    if len(fenced) == 1:
        return fenced[0]
    if len(fenced) > 1:
        raise NoJson("it holds several different JSON code blocks; send exactly one JSON object")
    objects = _distinct(_objects_in_prose(text))
    if len(objects) == 1:
        return objects[0]
    if objects:
        raise NoJson("it holds several different JSON objects; send exactly one")
    if not text.strip():
        raise NoJson("it was empty")
    raise NoJson("it holds no JSON object")


def _objects_in_prose(text: str) -> List[Tuple[str, Any]]:
    """Every top-level JSON object in the text (an object inside another is part of it)."""
    found: List[Tuple[str, Any]] = []
    position, tried = text.find("{"), 0
    while position != -1 and tried < MAX_OBJECT_STARTS:
        tried += 1
        try:
            value, end = _DECODER.raw_decode(text, position)
        except (ValueError, RecursionError):
            position = text.find("{", position + 1)
            continue
        found.append((text[position:end], value))
        position = text.find("{", end)
    return found


def _distinct(found: List[Tuple[str, Any]]) -> List[Tuple[str, Any]]:
    """The same value said twice (a fence and a repeat of it) is still one value."""
    kept: List[Tuple[str, Any]] = []
    for item in found:
        if not any(item[1] == other[1] for other in kept):
            kept.append(item)
    return kept
