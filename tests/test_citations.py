"""The citation and sandbox-link machines (pure), fed at every split point, and the renderer's
image / bot-mode rules with a fake media resolver."""
from __future__ import annotations

import re
from typing import Optional

import pytest

from backend_to_api.render.citations import CitationMachine, citation_urls, replace_all
from backend_to_api.render.sandbox_links import UNAVAILABLE, SandboxLinkMachine
from backend_to_api.render.text import ReplyRenderer
from backend_to_api.settings import BotMode
from backend_to_api.sse.events import ConversationId, ImagePointer, MessageFinished, TextDelta
from tests.emulator.tool_content import BROWSING_TEXT, CITED, citation

URLS = dict(CITED)
MESSAGE = {"metadata": {"citations": [citation(i, url) for i, url in CITED.items()]}}
EXPECTED = (f"据报道[[11]({CITED[11]})]，明天晴[[3]({CITED[3]})]。See also[[7]({CITED[7]})] and (end).")
HALF_MARKER = re.compile(r"【\d*(:\d*)?†?(s|so|sou|sour|sourc|source|来|来源)?$|†")


def splits(text: str):
    """Every way to cut ``text`` into two pieces, and every way into three."""
    for i in range(len(text) + 1):
        yield [text[:i], text[i:]]
    for i in range(1, len(text)):
        for j in range(i + 1, len(text)):
            yield [text[:i], text[i:j], text[j:]]


def test_citation_urls_read_cited_message_idx():
    assert citation_urls(MESSAGE) == URLS
    assert citation_urls({"metadata": {"citations": [{"metadata": None}, "x", {"metadata": {"url": 1}}]}}) == {}
    assert citation_urls({}) == {}


def test_whole_text_with_both_spellings_the_new_form_and_an_unmatched_marker():
    assert replace_all(BROWSING_TEXT, MESSAGE["metadata"]["citations"]) == EXPECTED


def test_every_split_point_with_citations_known():
    for pieces in splits(BROWSING_TEXT):
        machine = CitationMachine()
        out = [machine.feed(piece, URLS) for piece in pieces] + [machine.finish(URLS)]
        assert "".join(out) == EXPECTED, pieces
        for chunk in out:
            assert "†" not in chunk and not HALF_MARKER.search(chunk), (pieces, chunk)


def test_citations_arriving_only_at_the_end_of_the_message():
    for pieces in splits(BROWSING_TEXT):
        machine = CitationMachine()
        early = "".join(machine.feed(piece, {}) for piece in pieces)
        assert early == "据报道", pieces  # everything after the first marker waits for its citation
        assert early + machine.finish(URLS) == EXPECTED


def test_bot_mode_without_references_removes_markers():
    for pieces in splits("a【3†来源】b【12:0†source】c"):
        machine = CitationMachine(keep_links=False)
        assert "".join(machine.feed(piece, {}) for piece in pieces) + machine.finish({}) == "abc", pieces


@pytest.mark.parametrize("text", ["【注意】事项", "数组【1,2】", "【12abc", "x【", "【3†sou", "a【3:】"])
def test_brackets_that_are_not_markers_pass_through_unchanged(text):
    for pieces in splits(text):
        machine = CitationMachine()
        assert "".join(machine.feed(p, URLS) for p in pieces) + machine.finish(URLS) == text


def test_text_around_a_marker_in_one_delta_is_kept():
    machine = CitationMachine()
    assert machine.feed("x【3†source】. y", {3: "u"}) == "x[[3](u)]. y"
    assert not machine.holding


def test_a_held_partial_is_flushed_raw_at_the_end():
    machine = CitationMachine()
    assert machine.feed("abc【3†sou", {}) == "abc"
    assert machine.finish({}) == "【3†sou"


# --------------------------------------------------------------------------- sandbox links

LINK_TEXT = "Saved: [report.csv](sandbox:/mnt/data/report.csv) (CSV). Done."
LINK_EXPECTED = "Saved: [report.csv](https://b2a.example/files/x_report.csv) (CSV). Done."


def resolve(path: str) -> Optional[str]:
    return None if "missing" in path else "https://b2a.example/files/x_" + path.rsplit("/", 1)[-1]


def test_sandbox_link_at_every_split_point():
    for pieces in splits(LINK_TEXT):
        machine = SandboxLinkMachine()
        out = [machine.feed(piece, resolve) for piece in pieces] + [machine.finish(resolve)]
        assert "".join(out) == LINK_EXPECTED, pieces
        assert all("sandbox" not in chunk for chunk in out), pieces


def test_sandbox_link_that_cannot_be_fetched_becomes_a_note():
    machine = SandboxLinkMachine()
    text = machine.feed("[a.csv](sandbox:/mnt/data/missing.csv) ok", resolve) + machine.finish(resolve)
    assert text == f"[a.csv]{UNAVAILABLE} ok"


def test_ordinary_parentheses_and_a_partial_link_at_the_end():
    machine = SandboxLinkMachine()
    assert machine.feed("f(x) = (a", resolve) == "f(x) = (a"
    assert machine.feed(" (sand", resolve) == " "
    assert machine.finish(resolve) == "(sand"


# --------------------------------------------------------------------------- renderer rules

class FakeMedia:
    def __init__(self) -> None:
        self.calls: list = []

    def image_url(self, file_id: str, scheme: str = "file-service", conversation_id=None) -> Optional[str]:
        self.calls.append(file_id)
        return None if file_id.startswith("file-missing") else f"https://b2a.example/images/{file_id}.png"

    def sandbox_url(self, conversation_id, message_id, path) -> Optional[str]:
        self.calls.append((conversation_id, message_id, path))
        return "https://b2a.example/files/f_report.csv"


def render(bot: BotMode, *events) -> tuple[str, FakeMedia]:
    media = FakeMedia()
    renderer = ReplyRenderer(bot, media)  # type: ignore[arg-type]
    text = "".join(renderer.render(event) for event in events) + renderer.finish()
    return text, media


URL = "https://b2a.example/images/file-1.png"
MARKDOWN = f"\n![image]({URL})\n[下载链接]({URL})\n"


@pytest.mark.parametrize("bot, expected, downloads", [
    (BotMode(), MARKDOWN, 1),
    (BotMode(enabled=True, markdown_image_output=True), MARKDOWN, 1),
    (BotMode(enabled=True, plain_image_url_output=True), f"图片链接：{URL}\n", 1),
    (BotMode(enabled=True, plain_image_url_output=True, markdown_image_output=True), f"图片链接：{URL}\n", 1),
    (BotMode(enabled=True), "", 0),
])
def test_image_rendering_follows_the_bot_mode_matrix(bot, expected, downloads):
    text, media = render(bot, ImagePointer("file-1", "t-1"))
    assert text == expected
    assert len(media.calls) == downloads


def test_plain_image_after_text_starts_on_a_new_line():
    bot = BotMode(enabled=True, plain_image_url_output=True)
    text, _ = render(bot, TextDelta("Here:", "a-1"), ImagePointer("file-1", "t-1"))
    assert text == f"Here:\n图片链接：{URL}\n"


def test_image_that_cannot_be_fetched_is_a_short_note():
    text, _ = render(BotMode(), ImagePointer("file-missing-1", "t-1"))
    assert "could not be downloaded" in text and "file-service" not in text


def test_citations_arriving_with_message_finished():
    bot_off, _ = render(BotMode(), TextDelta("a【3†source】b", "a-1"),
                        MessageFinished("a-1", "assistant", {"metadata": {"citations": [citation(3, "u")]}}))
    assert bot_off == "a[[3](u)]b"
    kept, _ = render(BotMode(enabled=True, bing_reference_output=True),
                     TextDelta("a【3†source】b", "a-1", {"metadata": {"citations": [citation(3, "u")]}}))
    assert kept == "a[[3](u)]b"
    removed, _ = render(BotMode(enabled=True), TextDelta("a【3†source】b", "a-1", MESSAGE))
    assert removed == "ab"


def test_sandbox_link_is_resolved_with_the_conversation_and_message_ids():
    text, media = render(BotMode(enabled=True), ConversationId("c-1"), TextDelta(LINK_TEXT, "a-9"))
    assert text == LINK_EXPECTED.replace("x_report", "f_report")
    assert media.calls == [("c-1", "a-9", "/mnt/data/report.csv")]
