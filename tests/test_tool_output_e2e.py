"""Tool output end to end (openai SDK -> proxy -> emulator): browsing citations, DALL-E and python
images, sandbox files, the /images and /files routes, and every bot_mode output flag."""
from __future__ import annotations

import http.client
import os
import re
from urllib.parse import urlsplit

import pytest
import requests

from tests.emulator.tool_content import CITED

from .conftest import directive

CITATIONS = f"据报道[[11]({CITED[11]})]，明天晴[[3]({CITED[3]})]。See also[[7]({CITED[7]})] and (end)."
NO_CITATIONS = "据报道，明天晴。See also and (end)."
IMAGE_MD = re.compile(r"\n!\[image\]\((\S+/images/([0-9a-f]{32}\.png))\)\n\[下载链接\]\(\1\)\n")
HALF_MARKER = re.compile(r"【\d*(:\d*)?†?[a-z来源]*$|†")


def chat(proxy, stream: bool = True, **values) -> tuple[list[str], str]:
    """The content pieces of a reply (one per chunk when streamed) and the whole text."""
    client = proxy.client(timeout=60)
    messages = [{"role": "user", "content": directive(**values)}]
    if not stream:
        text = client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content
        return [text], text
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    return pieces, "".join(pieces)


def media_proxy(start_proxy, tmp_path_factory, **env: str):
    """A proxy that saves into its own fresh images/ and files/ directories."""
    root = tmp_path_factory.mktemp("media")
    proxy = start_proxy({"IMAGES_DIR": str(root / "images"), "FILES_DIR": str(root / "files"), **env})
    proxy.images_dir, proxy.files_dir = root / "images", root / "files"
    return proxy


@pytest.fixture(scope="module")
def tool_proxy(start_proxy, tmp_path_factory):
    return media_proxy(start_proxy, tmp_path_factory)


def blob(emulator, name: str) -> bytes:
    return requests.get(f"{emulator.url}/_emulator/blob/{name}", timeout=10).content


def local(proxy, url: str) -> str:
    """The same path on the proxy itself (a link may name a public backend_container_url)."""
    return proxy.url + urlsplit(url).path


# ------------------------------------------------------------------------------- citations

@pytest.mark.parametrize("encoding", ["cumulative", "v1"])
@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_citations_become_links_and_no_chunk_holds_half_a_marker(tool_proxy, encoding, chunk):
    pieces, text = chat(tool_proxy, emu="browsing", encoding=encoding, chunk=chunk)
    assert text.endswith(CITATIONS)
    assert text.startswith('\n```\nsearch("weather tomorrow")\n```\n')  # the browser call, as the web shows it
    for piece in pieces:
        assert not HALF_MARKER.search(piece), piece
    assert "【" not in text


def test_citations_in_a_non_streamed_reply(tool_proxy):
    _, text = chat(tool_proxy, stream=False, emu="browsing", chunk=1)
    assert text.endswith(CITATIONS)


# ------------------------------------------------------------------------------- images

@pytest.mark.parametrize("encoding", ["cumulative", "v1"])
def test_dalle_image_is_saved_and_served_byte_for_byte(tool_proxy, emulator, encoding):
    _, text = chat(tool_proxy, emu="dalle", encoding=encoding, file_id=f"file-dalle-{encoding}", after="A fox.")
    images = IMAGE_MD.findall(text)
    assert len(images) == 1, text  # the tool message came twice: still one image
    url, name = images[0]
    assert url.startswith(tool_proxy.url + "/images/")  # no backend_container_url: the address we were called at
    assert text.endswith("A fox.") and "file-service" not in text
    served = requests.get(url, timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/png"
    assert served.content == blob(emulator, f"file-dalle-{encoding}")
    assert served.headers["Access-Control-Allow-Origin"] == "*"
    assert (tool_proxy.images_dir / name).read_bytes() == served.content


def test_dalle_download_asks_with_the_access_token(tool_proxy, emulator):
    chat(tool_proxy, emu="dalle", file_id="file-dalle-auth")
    calls = emulator.requests("/backend-api/files/file-dalle-auth/download")
    assert len(calls) == 1 and calls[0]["headers"]["Authorization"].startswith("Bearer ey")


def test_python_image_output_is_shown_after_the_code(tool_proxy, emulator):
    _, text = chat(tool_proxy, emu="python_image", file_id="file-plot-1", code="plt.plot([1, 2])", after="Plotted.")
    # The output is only `<<ImageDisplayed>>`: no empty Result block, the image instead.
    assert text.startswith("\n```\nplt.plot([1, 2])\n```\n\n![image](")
    url, _ = IMAGE_MD.findall(text)[0]
    assert requests.get(url, timeout=10).content == blob(emulator, "file-plot-1")
    assert text.endswith("Plotted.")


def test_an_image_that_cannot_be_downloaded_is_a_short_note(tool_proxy):
    _, text = chat(tool_proxy, emu="dalle", file_id="file-missing-1", after="Done.")
    assert "[image could not be downloaded]" in text
    assert "file-service" not in text and "file-missing" not in text and text.endswith("Done.")


def test_backend_container_url_prefixes_the_links(start_proxy, tmp_path_factory, emulator):
    proxy = media_proxy(start_proxy, tmp_path_factory, BACKEND_CONTAINER_URL="https://b2a.example/")
    _, text = chat(proxy, emu="dalle", file_id="file-public-1")
    url, _ = IMAGE_MD.findall(text)[0]
    assert url.startswith("https://b2a.example/images/")
    assert requests.get(local(proxy, url), timeout=10).content == blob(emulator, "file-public-1")


def test_use_oaiusercontent_url_links_upstream_and_saves_nothing(start_proxy, tmp_path_factory, emulator):
    proxy = media_proxy(start_proxy, tmp_path_factory, USE_OAIUSERCONTENT_URL="true")
    _, text = chat(proxy, emu="dalle", file_id="file-upstream-1")
    assert f"![image]({emulator.url}/_emulator/blob/file-upstream-1)" in text
    _, sandbox = chat(proxy, emu="sandbox")
    assert f"]({emulator.url}/_emulator/blob/sandbox-report.csv?rscd=" in sandbox
    assert not proxy.images_dir.exists() or not os.listdir(proxy.images_dir)
    assert not proxy.files_dir.exists() or not os.listdir(proxy.files_dir)


# ------------------------------------------------------------------------------- sandbox files

@pytest.mark.parametrize("chunk", [1, 4])
def test_sandbox_link_is_saved_and_served_byte_for_byte(tool_proxy, emulator, chunk):
    pieces, text = chat(tool_proxy, emu="sandbox", chunk=chunk)
    assert all("sandbox" not in piece for piece in pieces)
    match = re.search(r"Saved: \[report\.csv\]\((\S+/files/[0-9a-f]{32}_report\.csv)\) \(CSV\)\. Done\.$", text)
    assert match, text
    served = requests.get(match.group(1), timeout=10)
    assert served.status_code == 200 and served.content == blob(emulator, "sandbox-report.csv")
    assert served.headers["Content-Type"].startswith("text/csv")
    assert 'filename=report.csv' in served.headers["Content-Disposition"]


def test_sandbox_download_names_the_conversation_message_and_path(tool_proxy, emulator):
    path = "/mnt/data/sales 2024.csv"
    _, text = chat(tool_proxy, emu="sandbox", sandbox_path=path)
    assert "/files/" in text and "unavailable" not in text  # (the emulator answers only the right ids)
    served = [s for s in emulator.streams() if any(f["path"] == path for f in s["sandbox_files"])]
    assert len(served) == 1
    conversation_id, message_id = served[0]["conversation_id"], served[0]["sandbox_files"][0]["message_id"]
    calls = [c for c in emulator.requests() if c["path"].endswith("/interpreter/download")
             and c["query"].get("sandbox_path") == path]
    assert len(calls) == 1
    # the conversation that served the link, and the message whose text holds it (not the python
    # output's nor the user's)
    assert calls[0]["path"] == f"/backend-api/conversation/{conversation_id}/interpreter/download"
    assert calls[0]["query"]["message_id"] == message_id


def test_a_sandbox_file_that_cannot_be_downloaded_leaves_no_pointer(tool_proxy):
    _, text = chat(tool_proxy, emu="sandbox", sandbox_path="/mnt/data/missing.csv")
    assert "Saved: [missing.csv] (file unavailable) (CSV). Done." in text and "sandbox:" not in text


# ------------------------------------------------------------------------------- /images and /files

def raw_get(proxy, path: str) -> tuple[int, bytes]:
    """A GET with the path exactly as written (no client-side dot-segment clean-up)."""
    host, port = urlsplit(proxy.url).hostname, urlsplit(proxy.url).port
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", [
    "/images/../config.json", "/images/..%2fconfig.json", "/images/%2e%2e%2fconfig.json",
    "/files/..%2F..%2Fconfig.json", "/images//etc/passwd", "/files/%2Fetc%2Fpasswd",
    "/images/.partial-x", "/images/" + "0" * 32 + ".png", "/files/" + "0" * 32 + "_nothing.csv",
    "/images/config.json", "/files/main.py",
])
def test_only_files_the_service_wrote_are_served(tool_proxy, path):
    status, body = raw_get(tool_proxy, path)
    assert status == 404, body
    assert b'"error"' in body and b"backend_container" not in body and b"import" not in body


def test_a_symlink_with_a_valid_name_is_refused(tool_proxy):
    tool_proxy.images_dir.mkdir(parents=True, exist_ok=True)
    name = "ab" * 16 + ".png"
    os.symlink(os.path.abspath("config.json"), tool_proxy.images_dir / name)
    status, body = raw_get(tool_proxy, f"/images/{name}")
    assert status == 404 and b"upstream_base_url" not in body


# ------------------------------------------------------------------------------- bot mode

def test_bot_mode_plain_output_hides_tools_and_drops_markers(start_proxy, tmp_path_factory):
    proxy = media_proxy(start_proxy, tmp_path_factory, BOT_MODE_ENABLED="true")
    _, text = chat(proxy, emu="browsing")
    assert text == NO_CITATIONS  # no code fence, markers removed
    _, image = chat(proxy, emu="dalle", file_id="file-bot-none", after="Done.")
    assert image == "Done."  # neither image flag: no image text, and no download at all
    _, plot = chat(proxy, emu="python_image", file_id="file-bot-none-2", after="Plotted.")
    assert plot == "Plotted."
    assert not proxy.images_dir.exists() or not os.listdir(proxy.images_dir)


def test_bot_mode_markdown_images(start_proxy, tmp_path_factory, emulator):
    proxy = media_proxy(start_proxy, tmp_path_factory, BOT_MODE_ENABLED="true",
                        BOT_MODE_ENABLED_MARKDOWN_IMAGE_OUTPUT="true")
    _, text = chat(proxy, emu="dalle", file_id="file-bot-md", after="Done.")
    (url, _), = IMAGE_MD.findall(text)
    assert text == f"\n![image]({url})\n[下载链接]({url})\nDone."
    assert requests.get(url, timeout=10).content == blob(emulator, "file-bot-md")


def test_bot_mode_plain_url_wins_and_references_and_plugins_can_be_kept(start_proxy, tmp_path_factory, emulator):
    proxy = media_proxy(start_proxy, tmp_path_factory, BOT_MODE_ENABLED="true",
                        BOT_MODE_ENABLED_MARKDOWN_IMAGE_OUTPUT="true", BOT_MODE_ENABLED_PLAIN_IMAGE_URL_OUTPUT="true",
                        BOT_MODE_ENABLED_BING_REFERENCE_OUTPUT="true")
    _, text = chat(proxy, emu="dalle", file_id="file-bot-plain", after="Done.")
    match = re.fullmatch(r"图片链接：(\S+/images/[0-9a-f]{32}\.png)\nDone\.", text)
    assert match, text
    assert requests.get(match.group(1), timeout=10).content == blob(emulator, "file-bot-plain")
    _, cited = chat(proxy, emu="browsing")
    assert cited == CITATIONS  # references kept; the browser call still hidden (no plugin output)
    _, linked = chat(proxy, emu="sandbox")
    assert re.fullmatch(r"Saved: \[report\.csv\]\(\S+/files/[0-9a-f]{32}_report\.csv\) \(CSV\)\. Done\.", linked)


def test_bot_mode_plugin_output_shows_the_tool_traffic(start_proxy, tmp_path_factory):
    proxy = media_proxy(start_proxy, tmp_path_factory, BOT_MODE_ENABLED="true", BOT_MODE_ENABLED_PLUGIN_OUTPUT="true")
    _, text = chat(proxy, emu="browsing")
    assert text == '\n```\nsearch("weather tomorrow")\n```\n' + NO_CITATIONS
