"""Code-interpreter file links ``[name](sandbox:/mnt/data/name.ext)`` -> links a user can open. Pure.

A ``sandbox:`` target means nothing outside ChatGPT (openai-compat.md item 28), so the machine holds
back a tail that could still become ``(sandbox:...)`` and hands each complete path to ``resolve``
(given by the renderer; it does the download) for the URL to show instead.
"""
from __future__ import annotations

import re
from typing import Callable, Optional

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
        out: list[str] = []
        rest = self._held
        while rest:
            start = rest.find(_OPEN)
            if start < 0:
                out.append(rest)
                rest = ""
                break
            out.append(rest[:start])
            rest = rest[start:]
            match = LINK.match(rest)
            if match is not None:
                url = resolve(match.group(1))
                out.append(f"({url})" if url else UNAVAILABLE)
                rest = rest[match.end():]
            elif not final and _PARTIAL.fullmatch(rest):
                break
            else:
                out.append(_OPEN)
                rest = rest[len(_OPEN):]
        self._held = rest
        return "".join(out)
