"""POST /v1/images/generations end to end: openai SDK -> proxy -> emulated DALL-E turn."""
from __future__ import annotations

import base64
import json
import socket
import time

import openai
import pytest
import requests

from tests.emulator.tool_content import DALLE_PROMPT

from .conftest import directive
from .test_upstream_failures_e2e import ended_hang_stream


@pytest.fixture(scope="module")
def image_proxy(start_proxy, tmp_path_factory):
    root = tmp_path_factory.mktemp("images-api")
    # No prefix: the prompt the emulator sees must start with its directive.
    return start_proxy({"IMAGES_DIR": str(root / "images"), "FILES_DIR": str(root / "files"),
                        "DALLE_PROMPT_PREFIX": ""})


def blob(emulator, file_id: str) -> bytes:
    return requests.get(f"{emulator.url}/_emulator/blob/{file_id}", timeout=10).content


def test_url_images_are_served_byte_for_byte(image_proxy, emulator):
    result = image_proxy.client().images.generate(
        model="dall-e-3", prompt=directive(emu="dalle", file_id="file-api-url", after="Here it is."), size="1024x1024")
    assert len(result.data) == 1
    image = result.data[0]
    assert image.revised_prompt == DALLE_PROMPT["prompt"]
    served = requests.get(image.url, timeout=10)
    assert served.status_code == 200 and served.content == blob(emulator, "file-api-url")
    sent = emulator.conversations()[-1]["json"]
    assert sent["model"] == "auto" and sent["system_hints"] == ["picture_v2"]  # dall-e-3: today's image flow


def test_b64_json_as_nextchat_sends_it(image_proxy, emulator):
    response = requests.post(image_proxy.url + "/v1/images/generations", headers={"Authorization": "Bearer rt-img"},
                             json={"model": "dall-e-3", "prompt": directive(emu="dalle", file_id="file-api-b64"),
                                   "response_format": "b64_json", "n": 1, "size": "1024x1024"}, timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"created", "data", "reply"} and isinstance(body["created"], int)
    assert base64.b64decode(body["data"][0]["b64_json"]) == blob(emulator, "file-api-b64")
    assert "url" not in body["data"][0]
    assert "![image]" in body["reply"]


def test_prefix_and_size_reach_the_upstream(start_proxy, emulator):
    proxy = start_proxy({"DALLE_PROMPT_PREFIX": "Draw this: "})
    with pytest.raises(openai.BadRequestError):  # the emulator just echoes: no image comes back
        proxy.client().images.generate(model="gpt-4o", prompt="a red fox", size="1792x1024")
    sent = emulator.conversations()[-1]["json"]["messages"][-1]["content"]["parts"][0]
    assert sent == "Draw this: a red fox\nsize: 1792x1024"


def test_no_image_is_an_error_not_an_empty_200(image_proxy):
    response = requests.post(image_proxy.url + "/v1/images/generations", headers={"Authorization": "Bearer rt-img"},
                             json={"model": "gpt-4o", "prompt": directive(text="I can't draw that.")}, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "image_generation_failed" and "I can't draw that." in error["message"]


@pytest.mark.parametrize("body,param", [
    ({}, "prompt"), ({"prompt": ""}, "prompt"), ({"prompt": "x", "n": 0}, "n"),
    ({"prompt": "x", "size": "9x9"}, "size"), ({"prompt": "x", "response_format": "gif"}, "response_format"),
    ({"prompt": "x" * 4001}, "prompt"),
])
def test_bad_parameters_are_400(image_proxy, body, param):
    response = requests.post(image_proxy.url + "/v1/images/generations", headers={"Authorization": "Bearer rt-img"},
                             json=body, timeout=10)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_dall_e_3_is_listed(image_proxy):
    assert "dall-e-3" in {m.id for m in image_proxy.client().models.list()}


def test_a_client_that_leaves_before_the_first_event_closes_the_upstream(image_proxy, emulator):
    """Image replies take long; a client that gives up (NextChat's stop, a closed tab) must not
    leave the upstream conversation running until its first event."""
    body = json.dumps({"model": "dall-e-3", "prompt": directive(emu="hang", text="x", after_chunks=0, hang=30)})
    asked_at = time.time()
    with socket.create_connection(("127.0.0.1", image_proxy.port)) as client:
        client.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rt-img\r\n"
                       b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body.encode()))
        time.sleep(1.5)
        closed_at = time.time()
    record = ended_hang_stream(emulator, asked_at)
    assert record["closed_early"] and record["ended"] - closed_at < 2.5, record
