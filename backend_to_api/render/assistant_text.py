"""Assistant text on its way to the user: citation markers, then sandbox links, each held back while
incomplete. One instance per reply; the renderer feeds it and says when a message ends."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from .citations import CitationMachine, citation_urls
from .sandbox_links import SandboxLinkMachine

# (message id, sandbox path) -> URL to show, or None when the file could not be had.
SandboxResolver = Callable[[str, str], Optional[str]]


class AssistantText:
    def __init__(self, keep_citations: bool, resolve_sandbox: SandboxResolver) -> None:
        self._citations = CitationMachine(keep_citations)
        self._links = SandboxLinkMachine()
        self._resolve_sandbox = resolve_sandbox
        self._message_id = ""  # the message whose text is held (links are resolved against it)
        self._urls: dict[int, str] = {}

    def feed(self, text: str, message_id: str, message: Mapping[str, Any]) -> str:
        if message_id != self._message_id:  # a new message cites its own sources
            self._message_id, self._urls = message_id, {}
        # A later snapshot may come without the list (v1 documents keep it; some mirrors don't).
        self._urls = citation_urls(message) or self._urls
        return self._links.feed(self._citations.feed(text, self._urls), self._resolve)

    def finish_message(self, message_id: str, message: Mapping[str, Any]) -> str:
        """The message ended: its citations are final, so nothing needs holding any more."""
        if message_id != self._message_id:
            return ""
        self._urls = citation_urls(message) or self._urls
        return self.flush()

    def flush(self) -> str:
        released = self._citations.finish(self._urls)
        return self._links.feed(released, self._resolve) + self._links.finish(self._resolve)

    def _resolve(self, path: str) -> Optional[str]:
        return self._resolve_sandbox(self._message_id, path)
