"""Images and files as input (issue 3 item 8), end to end: openai SDK -> proxy -> emulated upstream.

The emulator's `inputs` scenario answers with what the user message carried upstream, and
`/_emulator/files` shows what each upload step received.
"""
from __future__ import annotations

import base64
import io
import json
import urllib.parse

import openai
import pytest
import requests
from PIL import Image

from .conftest import directive, free_port

PNG_SIZE = (64, 48)


def png_bytes(color: str = "green") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", PNG_SIZE, color).save(buffer, "PNG")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def ask(proxy, key: str, *parts: dict, model: str = "gpt-4o"):
    content = [{"type": "text", "text": directive(emu="inputs")}, *parts]
    return proxy.client(key).chat.completions.create(model=model, messages=[{"role": "user", "content": content}])


def seen(reply) -> dict:
    """What the emulator says the user message carried."""
    return json.loads(reply.choices[0].message.content)


def uploads(emulator) -> list:
    return requests.get(emulator.url + "/_emulator/files", timeout=5).json()


def last_user_message(emulator) -> dict:
    payload = emulator.conversations()[-1]["json"]
    return [m for m in payload["messages"] if m["author"]["role"] == "user"][-1]


@pytest.fixture(autouse=True)
def fresh_emulator(emulator):
    emulator.reset()
    yield
    emulator.reset()  # also clears a fail_upload setting


def test_data_uri_png_goes_up_as_an_image_between_the_texts(proxy, emulator):
    png = png_bytes()
    reply = ask(proxy, "rt-upload-png", image_part(data_uri(png, "image/png")), {"type": "text", "text": "after"})
    message = last_user_message(emulator)
    assert message["content"]["content_type"] == "multimodal_text"
    text, image, after = message["content"]["parts"]
    assert text.startswith('{"emu"') and after == "after"
    [upload] = uploads(emulator)
    assert image == {"content_type": "image_asset_pointer", "asset_pointer": f"file-service://{upload['file_id']}",
                     "size_bytes": len(png), "width": 64, "height": 48}
    [attachment] = message["metadata"]["attachments"]
    assert attachment["id"] == upload["file_id"] and attachment["mimeType"] == "image/png"
    assert (attachment["size"], attachment["width"], attachment["height"]) == (len(png), 64, 48)
    assert attachment["name"].endswith(".png")
    assert upload["use_case"] == "multimodal" and upload["file_size"] == upload["received_bytes"] == len(png)
    assert upload["put_headers"] == {"Content-Type": "image/png", "x-ms-blob-type": "BlockBlob", "Authorization": None}
    assert upload["confirmed"] == 1
    assert seen(reply)["parts"][1] == image
    assert reply.usage.prompt_tokens > 85  # the image counts a flat estimate


def test_image_url_is_fetched_through_redirects_and_sniffed(proxy, emulator):
    # Served as application/octet-stream behind two redirects: the bytes say PNG.
    url = emulator.url + "/_emulator/redirect/2/mislabelled.png"
    reply = ask(proxy, "rt-upload-url", image_part(url))
    [attachment] = seen(reply)["attachments"]
    assert attachment["mimeType"] == "image/png" and attachment["name"] == "mislabelled.png"
    assert (attachment["width"], attachment["height"]) == PNG_SIZE
    assert seen(reply)["content_type"] == "multimodal_text"


def test_pdf_goes_as_an_attachment_only(proxy, emulator):
    reply = ask(proxy, "rt-upload-pdf", image_part(emulator.url + "/_emulator/asset/paper.pdf"))
    message = last_user_message(emulator)
    assert message["content"]["content_type"] == "text"
    assert len(message["content"]["parts"]) == 1 and message["content"]["parts"][0].startswith('{"emu"')
    [attachment] = message["metadata"]["attachments"]
    assert attachment["mimeType"] == "application/pdf" and attachment["name"] == "paper.pdf"
    assert "fileTokenSize" not in attachment and "width" not in attachment
    [upload] = uploads(emulator)
    assert upload["use_case"] == "my_files" and upload["put_headers"]["Content-Type"] == "application/pdf"
    assert seen(reply)["attachments"] == [attachment]


def test_unknown_type_goes_as_text_plain(proxy, emulator):
    ask(proxy, "rt-upload-unknown", image_part(data_uri(b"\x00\x01 odd bytes", "application/x-unknown")))
    [attachment] = last_user_message(emulator)["metadata"]["attachments"]
    assert attachment["mimeType"] == "text/plain" and attachment["name"].endswith(".txt")
    [upload] = uploads(emulator)
    assert upload["use_case"] == "my_files" and upload["put_headers"]["Content-Type"] == "text/plain"


def test_percent_encoded_text_document_gets_a_token_estimate(proxy, emulator):
    text = "# Title\n\nSome *markdown*, 中文.\n"
    ask(proxy, "rt-upload-md", image_part("data:text/markdown," + urllib.parse.quote(text)))
    [attachment] = last_user_message(emulator)["metadata"]["attachments"]
    assert attachment["mimeType"] == "text/markdown" and attachment["size"] == len(text.encode())
    assert 0 < attachment["fileTokenSize"] <= len(text.encode())


def test_the_same_image_is_uploaded_once_per_account(proxy, emulator):
    image = image_part(data_uri(png_bytes("purple"), "image/png"))
    first = seen(ask(proxy, "rt-upload-twice", image))["attachments"][0]["id"]
    second = seen(ask(proxy, "rt-upload-twice", image, image))["attachments"]
    assert [a["id"] for a in second] == [first, first]
    assert len(emulator.requests("/backend-api/files")) == 1 and len(uploads(emulator)) == 1
    # Another account must not be handed the first account's file (the original's bug S9).
    other = seen(ask(proxy, "rt-upload-other-account", image))["attachments"][0]["id"]
    assert other != first and len(uploads(emulator)) == 2


def test_a_rejected_token_is_refreshed_once_during_upload(proxy, emulator):
    ask(proxy, "rt-upload-401", {"type": "text", "text": "warm the token cache"})
    token = emulator.conversations()[-1]["headers"]["Authorization"].split()[1]
    emulator.revoke(token)
    reply = ask(proxy, "rt-upload-401", image_part(data_uri(png_bytes("orange"), "image/png")))
    assert seen(reply)["attachments"][0]["mimeType"] == "image/png"
    statuses = [r["headers"]["Authorization"] == f"Bearer {token}" for r in emulator.requests("/backend-api/files")]
    assert statuses == [True, False]  # the revoked token once, then the refreshed one


@pytest.fixture(scope="module")
def small_proxy(start_proxy):
    return start_proxy({"INPUT_FILE_MAX_BYTES": "1000", "INPUT_FILE_MAX_REDIRECTS": "1"})


@pytest.mark.parametrize("source", ["data", "url"])
def test_too_large_is_413(small_proxy, emulator, source):
    url = (data_uri(bytes(2000), "image/png") if source == "data"
           else emulator.url + "/_emulator/asset/blob.bin?size=5000")
    with pytest.raises(openai.APIStatusError) as caught:
        ask(small_proxy, "rt-upload-big", image_part(url))
    assert caught.value.status_code == 413
    assert caught.value.body["code"] == "file_too_large"
    assert emulator.conversations() == [] and uploads(emulator) == []


@pytest.mark.parametrize("url", ["data:image/png;base64,@@not base64@@", "data:image/png;base64"])
def test_bad_data_uri_is_400(proxy, emulator, url):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(proxy, "rt-upload-bad", image_part(url))
    assert caught.value.body["code"] == "invalid_data_uri"
    assert emulator.conversations() == []


def test_unfetchable_urls_are_400(small_proxy, emulator):
    urls = [f"http://127.0.0.1:{free_port()}/gone.png", emulator.url + "/_emulator/asset/missing.png",
            emulator.url + "/_emulator/redirect/2/image.png"]  # two redirects, one allowed
    for url in urls:
        with pytest.raises(openai.BadRequestError) as caught:
            ask(small_proxy, "rt-upload-unreachable", image_part(url))
        assert caught.value.body["code"] == "invalid_image_url", url
    assert emulator.conversations() == []


@pytest.mark.parametrize("step", ["create", "put", "uploaded"])
def test_upload_failure_is_502(proxy, emulator, step):
    emulator.configure(fail_upload=step)
    with pytest.raises(openai.InternalServerError) as caught:
        ask(proxy, f"rt-upload-fail-{step}", image_part(data_uri(png_bytes("gray"), "image/png")))
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upload_failed"
    assert emulator.conversations() == []
