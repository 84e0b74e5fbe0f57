"""Reading the proxy's tool / response-format protocol out of conversation texts (issue 15).

The proxy prompts the web model with a `# Tools` section (a `<tools>` block, one JSON object per
line, the `<tool_call>` template and a sentence on tool_choice) and a `# Response format` section
(a `<json_schema>` block for json_schema). It sends them as system messages, or, for o1-style
models, folded into the first user message before the user's own text, so they are looked for in
every message and cut out of a user text before that text is read as the user's words.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from .directive import DirectiveError

TOOLS_HEADER = "# Tools"
FORMAT_HEADER = "# Response format"
TOOLS_BLOCK = re.compile(r"<tools>\n(.*?)\n?</tools>", re.S)
SCHEMA_BLOCK = re.compile(r"<json_schema>\n(.*?)\n?</json_schema>", re.S)
FORCED = re.compile(r"You must call the function `([^`\n]+)` in this reply\.")
# The sentences that close the tools section (the contract's tool_choice / parallel sentences).
CHOICE_SENTENCES = re.compile(
    r"\s*(?:Call a function only when it helps; otherwise answer directly\."
    r"|You must call at least one function in this reply\."
    r"|You must call the function `[^`\n]*` in this reply\."
    r"|Call at most one function per reply\.)")
TOOL_RESPONSE = re.compile(r"<tool_response>\s*(.*?)\s*</tool_response>", re.S)
CORRECTION_PREFIX = "Your previous reply was not valid:"


@dataclass(frozen=True)
class Prompt:
    """What the protocol sections of a conversation tell the model."""
    tools: tuple[dict, ...] = ()  # the function objects: {"name", "description", "parameters"}
    forced: str | None = None  # tool_choice naming a function
    format: str | None = None  # "json_object" | "json_schema" | None
    schema: dict | None = None  # the json_schema's schema

    @property
    def active(self) -> bool:
        return bool(self.tools) or self.format is not None

    def tool(self, name: str) -> dict | None:
        return next((tool for tool in self.tools if tool.get("name") == name), None)


def read_prompt(texts: Iterable[str]) -> Prompt:
    """The protocol as the last message carrying each section states it."""
    tools, forced, kind, schema = (), None, None, None
    for text in texts:
        if TOOLS_HEADER in text and (block := TOOLS_BLOCK.search(text)):
            tools = tuple(_tool_lines(block.group(1)))
            forced = (match := FORCED.search(text)) and match.group(1)
        if _header_at(text, FORMAT_HEADER) >= 0:
            block = SCHEMA_BLOCK.search(text)
            kind = "json_schema" if block else "json_object"
            schema = _json(block.group(1), "<json_schema>") if block else None
    return Prompt(tools, forced, kind, schema)


def _tool_lines(block: str) -> Iterable[dict]:
    for line in filter(str.strip, block.split("\n")):
        item = _json(line, "<tools>")
        if not isinstance(item, dict):
            raise DirectiveError(f"protocol prompt: a <tools> line is not an object: {line!r}")
        yield item.get("function", item)


def _json(text: str, where: str) -> Any:
    """A JSON value of the proxy's prompt; one that does not parse is the proxy's fault: 422."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DirectiveError(f"protocol prompt: {where} holds invalid JSON: {exc}") from exc


def user_words(text: str) -> str:
    """A user message's text without the protocol sections folded into it."""
    for header, section_end in ((TOOLS_HEADER, _tools_end), (FORMAT_HEADER, _format_end)):
        start = _header_at(text, header)
        if start >= 0:
            text = text[:start] + text[section_end(text, start):]
    return text.strip()


def _header_at(text: str, header: str) -> int:
    """Where `header` stands as a whole line (-1: nowhere)."""
    match = re.search(rf"(?m)^{re.escape(header)}$", text)
    return match.start() if match else -1


def _tools_end(text: str, start: int) -> int:
    # The template's closing tag stands on its own line (the sentence before it names the tags).
    end = text.find("\n</tool_call>", max(start, text.find("</tools>", start)))
    if end < 0:
        return len(text)
    end += len("\n</tool_call>")
    while match := CHOICE_SENTENCES.match(text, end):
        end = match.end()
    return end


def _format_end(text: str, start: int) -> int:
    """The end of the section: its `</json_schema>`, or else the end of the instruction's line
    (a folded user text follows after a single newline)."""
    schema_end = text.find("</json_schema>", start)
    if schema_end >= 0:
        return schema_end + len("</json_schema>")
    body = start + len(FORMAT_HEADER)
    while text.startswith("\n", body):
        body += 1
    line_end = text.find("\n", body)
    return len(text) if line_end < 0 else line_end


def tool_results(text: str) -> tuple[str, ...] | None:
    """The contents of a message made only of `<tool_response>` blocks (None for any other)."""
    blocks = TOOL_RESPONSE.findall(text)
    if not blocks or TOOL_RESPONSE.sub("", text).strip():
        return None
    return tuple(_result_content(block) for block in blocks)


def _result_content(block: str) -> str:
    try:
        result = json.loads(block)
    except ValueError:
        return block
    if not isinstance(result, dict) or "content" not in result:
        return block
    content = result["content"]
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def is_correction(text: str) -> bool:
    """The user message a structured-output retry sends after a reply that did not match."""
    return text.lstrip().startswith(CORRECTION_PREFIX)
