"""What a test asks the emulator to do, read from the last user message.

A user text that starts with `{"emu"` is a JSON directive such as
`{"emu": "tools", "encoding": "v1", "chunk": 1}`; any other text gets the default `text` scenario
echoing it back. Unknown keys and wrong types are refused (422) so a typo in a test fails loudly
instead of silently running the default.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

DIRECTIVE_PREFIX = '{"emu"'


class DirectiveError(ValueError):
    """The directive cannot be understood; the emulator answers 422 with this message."""


@dataclass(frozen=True)
class Directive:
    emu: str = "text"
    text: str = "Hello from the emulator."
    encoding: str = "cumulative"
    chunk: int = 3
    interval: float = 0.0
    first_delay: float = 0.0
    finish: str = "stop"
    crlf: bool = False
    fragment: int = 0
    model_slug: str | None = None
    after_chunks: int = 2
    hang: float = 30.0
    # tools
    code: str = "print(1 + 1)"
    output: str = "2\n"
    after: str = "The result is 2."
    # dalle, python_image: the image's upstream file id (`file-missing...` fails to download)
    file_id: str = "file-emu-image"
    # picture_v2*: the pointer's scheme, seconds until an async image is stored, how a refusal shows
    pointer: str = "sediment"
    async_delay: float = 0.5
    refusal: str = "object"
    # sandbox: the file the code interpreter wrote (a path containing `missing` fails to download)
    sandbox_path: str = "/mnt/data/report.csv"
    # rewrite: streamed first, then replaced by `text`
    draft: str = "Let me think about it"
    # error_midstream
    error: str = "Something went wrong"
    # http_error
    status: int = 500
    body: Any = None
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    # agent (protocol_model.py): the tool-call rounds, each a list of calls (`{"name", "arguments"}`
    # or `{"raw": "the block's exact text"}`; None: call the forced or first offered tool once),
    # text said before a round's calls, thoughts first (the `thinking` scenario), and how a JSON
    # answer of the response-format protocol goes wrong
    plan: list | None = None
    say: str = ""
    think: bool = False
    fence: bool = False
    bad_first: bool = False
    always_bad: bool = False


_CHOICES = {"encoding": ("cumulative", "v1"), "finish": ("stop", "max_tokens"),
            "pointer": ("sediment", "file-service"), "refusal": ("object", "error_frame", "text", "async")}
_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
          "str | None": (str, type(None)), "dict": (dict,), "Any": (object,),
          "list | None": (list, type(None))}


def directive_for(user_text: str) -> Directive:
    """The directive in `user_text`, or the echo reply when it holds none."""
    stripped = user_text.lstrip()
    if not stripped.startswith(DIRECTIVE_PREFIX):
        return Directive(text=f"Echo: {user_text}")
    try:
        # raw_decode: text after the JSON object (a proxy may append some) is ignored.
        raw, _ = json.JSONDecoder().raw_decode(stripped)
    except ValueError as exc:
        raise DirectiveError(f"emulator directive is not valid JSON: {exc}") from exc
    return _build(raw)


def _build(raw: dict) -> Directive:
    known = {f.name: f.type for f in fields(Directive)}
    for key, value in raw.items():
        if key not in known:
            raise DirectiveError(f"emulator directive: unknown key {key!r}")
        # bool is an int subclass: `"chunk": true` must not pass as a number.
        if not isinstance(value, _TYPES[known[key]]) or (
                isinstance(value, bool) and known[key] in ("int", "float")):
            raise DirectiveError(f"emulator directive: {key!r} must be {known[key]}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise DirectiveError(f"emulator directive: {key!r} must be one of {_CHOICES[key]}")
    directive = Directive(**raw)
    _check_ranges(directive)
    return directive


def _check_ranges(d: Directive) -> None:
    if d.chunk < 1:
        raise DirectiveError("emulator directive: 'chunk' must be at least 1")
    for name in ("interval", "first_delay", "fragment", "after_chunks", "hang", "async_delay"):
        if getattr(d, name) < 0:
            raise DirectiveError(f"emulator directive: {name!r} must not be negative")
    if not 100 <= d.status <= 599:
        raise DirectiveError("emulator directive: 'status' must be an HTTP status")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in d.headers.items()):
        raise DirectiveError("emulator directive: 'headers' must map strings to strings")
    for index, round_ in enumerate(d.plan or ()):
        if not isinstance(round_, list) or not all(map(_is_call, round_)):
            raise DirectiveError(f"emulator directive: 'plan'[{index}] must be a list of calls, each "
                                 '{"name": str, "arguments": ...} or {"raw": str}')


def _is_call(call: object) -> bool:
    if not isinstance(call, dict):
        return False
    if set(call) == {"raw"}:
        return isinstance(call["raw"], str)
    return set(call) == {"name", "arguments"} and isinstance(call["name"], str)
