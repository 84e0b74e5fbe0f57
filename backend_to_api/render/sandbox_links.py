"""Code-interpreter file links ``[name](sandbox:/mnt/data/name.ext)`` -> links a user can open. Pure.

A ``sandbox:`` target means nothing outside ChatGPT (openai-compat.md item 28), so the machine holds
back a tail that could still become ``(sandbox:...)`` and hands each complete path to ``resolve``
(given by the renderer; it does the download) for the URL to show instead.
"""
from __future__ import annotations

import re
from typing import Callable, Optional

from .held_text import release

LINK = re.compile(r"\(sandbox:(/[^)\n]{1,1024})\)")
_PARTIAL = re.compile(r"\((?:s(?:a(?:n(?:d(?:b(?:o(?:x(?::(?:/[^)\n]{0,1024})?)?)?)?)?)?)?)?)?")
_OPEN = "("
UNAVAILABLE = " (file unavailable)"

Resolver = Callable[[str], Optional[str]]


class SandboxLinkMachine:
    """Feed it assistant text; it returns the text safe to show with sandbox targets rewritten."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str, resolve: Resolver) -> str:
        self._held += text
        return self._release(resolve, final=False)

    def finish(self, resolve: Resolver) -> str:
        return self._release(resolve, final=True)

    def _release(self, resolve: Resolver, final: bool) -> str:
        shown, self._held = release(self._held, _OPEN, lambda rest, out: _link(rest, resolve, final, out))
        return shown


def _link(rest: str, resolve: Resolver, final: bool, out: list) -> Optional[int]:
    """Rewrite a complete ``(sandbox:...)``, hold a tail that may become one, pass any other "("."""
    match = LINK.match(rest)
    if match is not None:
        url = resolve(match.group(1))
        out.append(f"({url})" if url else UNAVAILABLE)
        return match.end()
    if not final and _PARTIAL.fullmatch(rest):
        return None
    out.append(_OPEN)
    return len(_OPEN)
