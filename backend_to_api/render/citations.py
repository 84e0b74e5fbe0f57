"""Browsing citation markers (【11†source】, 【11†来源】, 【3:0†source】) -> markdown links. Pure: no I/O.

The upstream streams a marker in pieces and may only put the matching ``metadata.citations`` on a
later event than the marker's text, so the machine holds back (a) any tail that could still become a
marker and (b) a complete marker whose citation has not arrived yet, together with everything after
it (order must be kept), until the citation shows up or the message finishes. Unlike the original,
text before or after a marker in the same delta is never lost and markers never leak half-written.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Sequence

from .held_text import release

MARKER = re.compile(r"【(\d{1,6})(?::\d{1,6})?†(?:source|来源)】")
# Everything a marker can look like before its closing bracket, so a tail matching this is held.
_PARTIAL = re.compile(r"【(?:\d{1,6}(?::\d{0,6})?(?:†(?:s(?:o(?:u(?:r(?:c(?:e)?)?)?)?)?|来(?:源)?)?)?)?")
_OPEN = "【"


def citation_urls(message: Mapping[str, Any]) -> dict[int, str]:
    """``cited_message_idx`` -> url, from a message snapshot's ``metadata.citations``.

    Runs for every text delta: the checks are against ``dict`` (what parsed JSON is), because an
    isinstance against typing's Mapping goes through the ABC machinery and cost more than the rest."""
    metadata = message.get("metadata") if isinstance(message, dict) else None
    citations = metadata.get("citations") if isinstance(metadata, dict) else None
    urls: dict[int, str] = {}
    for citation in citations if isinstance(citations, list) else ():
        inner = citation.get("metadata") if isinstance(citation, dict) else None
        if not isinstance(inner, dict):
            continue
        extra = inner.get("extra")
        index = extra.get("cited_message_idx") if isinstance(extra, dict) else None
        url = inner.get("url")
        if isinstance(index, int) and not isinstance(index, bool) and isinstance(url, str) and url:
            urls.setdefault(index, url)
    return urls


class CitationMachine:
    """Feed it the new text of one message (with that message's current citations); it returns the
    text that is safe to show. ``finish`` releases what is held when the message ends."""

    def __init__(self, keep_links: bool = True) -> None:
        self.keep_links = keep_links  # bot mode without enabled_bing_reference_output: drop markers
        self._held = ""

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def feed(self, text: str, urls: Mapping[int, str]) -> str:
        self._held += text
        return self._release(urls, final=False)

    def finish(self, urls: Mapping[int, str]) -> str:
        """The message ended: unmatched markers are dropped, a partial tail is shown as it is."""
        return self._release(urls, final=True)

    def _release(self, urls: Mapping[int, str], final: bool) -> str:
        shown, self._held = release(self._held, _OPEN, lambda rest, out: self._marker(rest, urls, final, out))
        return shown

    def _marker(self, rest: str, urls: Mapping[int, str], final: bool, out: list[str]) -> Optional[int]:
        """How many characters of ``rest`` (which starts with 【) were handled; None to hold it."""
        match = MARKER.match(rest)
        if match is None:
            if not final and _PARTIAL.fullmatch(rest):
                return None
            out.append(_OPEN)  # an ordinary bracket: not a marker after all
            return len(_OPEN)
        if not self.keep_links:
            return match.end()
        number = int(match.group(1))
        url = urls.get(number)
        if url is None and not final:
            return None
        if url is not None:
            out.append(f"[[{number}]({url})]")
        return match.end()


def replace_all(text: str, citations: Sequence[Mapping[str, Any]], keep_links: bool = True) -> str:
    """One-shot helper (tests, whole texts): the same result as feeding ``text`` and finishing."""
    machine = CitationMachine(keep_links)
    urls = citation_urls({"metadata": {"citations": list(citations)}})
    return machine.feed(text, urls) + machine.finish(urls)
