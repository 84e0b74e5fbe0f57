"""Today's image flow end to end (spec backend-api-2026.md 3.7, 5): openai SDK -> proxy -> emulated
picture_v2 turns: in-stream and async results, sediment:// and file-service:// pointers, partial
previews, refusals, n, and /v1/images/edits with uploaded sources and a mask."""
from __future__ import annotations

import base64
import io
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests
from PIL import Image

from tests.emulator.tool_content import PICTURE_PROMPT, PICTURE_REFUSAL

from .conftest import directive, wait_until
from .contact_recorder import ContactRecorder


@pytest.fixture(scope="module")
def pictures(start_proxy, tmp_path_factory):
    root = tmp_path_factory.mktemp("images-2026")
    return start_proxy({"IMAGES_DIR": str(root / "images"), "FILES_DIR": str(root / "files"),
                        "DALLE_PROMPT_PREFIX": "", "IMAGE_POLL_INTERVAL": "0.2", "IMAGE_POLL_TIMEOUT": "3",
                        "INPUT_FILE_MAX_BYTES": "8192", "MAX_FILES_PER_REQUEST": "3"})


def blob(emulator, file_id: str) -> bytes:
    return requests.get(f"{emulator.url}/_emulator/blob/{file_id}", timeout=10).content


def png(colour: str, size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def last_conversation(emulator) -> dict:
    return emulator.conversations()[-1]["json"]


def downloads(emulator, conversation_id: str) -> list:
    prefix = f"/backend-api/conversation/{conversation_id}/attachment/"
    return [r["path"][len(prefix):] for r in emulator.requests() if r["path"].startswith(prefix)]


def conversation_id_of(emulator) -> str:
    return emulator.streams()[-1]["conversation_id"]


@pytest.mark.parametrize("encoding", ["v1", "cumulative"])
def test_gpt_image_1_in_stream_sediment_image_as_url(pictures, emulator, encoding):
    result = pictures.client().images.generate(
        model="gpt-image-1", response_format="url",
        prompt=directive(emu="picture_v2", file_id="file_emu_sed1", encoding=encoding))
    assert len(result.data) == 1 and result.data[0].revised_prompt == PICTURE_PROMPT
    served = requests.get(result.data[0].url, timeout=10)
    # the finished image, not the partial preview that came first
    assert served.status_code == 200 and served.content == blob(emulator, "file_emu_sed1")
    assert served.content != blob(emulator, "file_emu_sed1-preview")
    sent = last_conversation(emulator)
    assert sent["model"] == "auto" and sent["system_hints"] == ["picture_v2"]
    assert sent["messages"][-1]["metadata"]["system_hints"] == ["picture_v2"]
    # sediment:// is downloaded through the conversation that made it (emulator: 404 otherwise)
    assert downloads(emulator, conversation_id_of(emulator)) == ["file_emu_sed1/download"]


@pytest.mark.parametrize("model", ["gpt-image", "dall-e-3"])
def test_file_service_pointer_as_b64_json(pictures, emulator, model):
    result = pictures.client().images.generate(
        model=model, response_format="b64_json",
        prompt=directive(emu="picture_v2", pointer="file-service", file_id="file-emu-fs1"))
    assert base64.b64decode(result.data[0].b64_json) == blob(emulator, "file-emu-fs1")
    assert result.data[0].url is None
    assert "/backend-api/files/file-emu-fs1/download" in [r["path"] for r in emulator.requests()]


def test_async_result_is_found_by_polling_the_conversation(pictures, emulator):
    result = pictures.client().images.generate(
        model="gpt-image-1", response_format="b64_json",
        prompt=directive(emu="picture_v2_async", file_id="file_emu_async1", async_delay=0.7))
    assert base64.b64decode(result.data[0].b64_json) == blob(emulator, "file_emu_async1")
    conversation_id = conversation_id_of(emulator)
    polls = emulator.requests(f"/backend-api/conversation/{conversation_id}")
    # the first polls see only the task and a partial preview; none is taken for the result
    assert len(polls) >= 2 and all(p["method"] == "GET" for p in polls)
    assert polls[1]["time"] - polls[0]["time"] >= 0.15  # image_poll_interval 0.2, not a busy loop


def test_async_result_that_never_comes_is_a_bounded_504(pictures):
    response = requests.post(pictures.url + "/v1/images/generations", headers={"Authorization": "Bearer rt-img"},
                             json={"model": "gpt-image-1",
                                   "prompt": directive(emu="picture_v2_async", async_delay=60)}, timeout=30)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "image_generation_timeout"
    assert response.elapsed.total_seconds() < 6  # image_poll_timeout 3


def test_a_poll_that_hangs_still_ends_within_image_poll_timeout(pictures, emulator):
    """Each poll is bounded by what is left of image_poll_timeout (3 s here), not by the 60 s of a GET."""
    streams = len(emulator.streams())
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        never_ready = {"model": "gpt-image-1", "prompt": directive(emu="picture_v2_async", async_delay=60)}
        answer = pool.submit(requests.post, pictures.url + "/v1/images/generations",
                             headers={"Authorization": "Bearer rt-img"}, json=never_ready, timeout=30)
        wait_until(lambda: len(emulator.streams()) > streams, timeout=5, what="image turn")
        hang = {"path": f"/backend-api/conversation/{conversation_id_of(emulator)}", "delay": 8, "times": 3}
        requests.post(f"{emulator.url}/_emulator/slow", json=hang, timeout=5).raise_for_status()
        response = answer.result()
        elapsed = time.monotonic() - started
    assert response.status_code == 504 and response.json()["error"]["code"] == "image_generation_timeout"
    assert elapsed < 4.5, elapsed  # image_poll_timeout 3 (+ the turn); the hung poll alone would take 8


@pytest.mark.parametrize("refusal", ["object", "error_frame", "text", "async"])
def test_content_policy_refusal_is_a_400_not_an_empty_200(pictures, refusal):
    with pytest.raises(openai.BadRequestError) as caught:
        pictures.client().images.generate(model="gpt-image-1",
                                          prompt=directive(emu="picture_v2_refusal", refusal=refusal, async_delay=0.3))
    assert caught.value.status_code == 400 and caught.value.code == "content_policy_violation"
    assert caught.value.body["type"] == "invalid_request_error"
    if refusal == "text":
        assert PICTURE_REFUSAL in caught.value.body["message"]


def test_n_runs_one_turn_per_image(pictures, emulator):
    before = len(emulator.conversations())
    result = pictures.client().images.generate(model="gpt-image-1", n=2, response_format="url",
                                               prompt=directive(emu="picture_v2", file_id="file_emu_n2"))
    assert len(result.data) == 2 and len(emulator.conversations()) - before == 2
    assert all(requests.get(item.url, timeout=10).content == blob(emulator, "file_emu_n2") for item in result.data)
    assert result.data[0].url != result.data[1].url


def test_edit_one_image(pictures, emulator):
    source = png("red")
    result = pictures.client().images.edit(model="gpt-image-1", image=("red.png", source, "image/png"),
                                           prompt=directive(emu="picture_v2", file_id="file_emu_edit1"),
                                           response_format="b64_json")
    assert base64.b64decode(result.data[0].b64_json) == blob(emulator, "file_emu_edit1")
    message = last_conversation(emulator)["messages"][-1]
    parts = message["content"]["parts"]
    assert message["content"]["content_type"] == "multimodal_text"
    assert [p["content_type"] for p in parts[:1]] == ["image_asset_pointer"] and isinstance(parts[1], str)
    assert parts[0]["width"] == 40 and parts[0]["height"] == 30
    uploaded = {f["file_id"]: f for f in requests.get(emulator.url + "/_emulator/files", timeout=5).json()}
    file_id = parts[0]["asset_pointer"].removeprefix("file-service://")
    assert uploaded[file_id]["received_bytes"] == len(source) and uploaded[file_id]["use_case"] == "multimodal"
    assert message["metadata"]["system_hints"] == ["picture_v2"] and len(message["metadata"]["attachments"]) == 1


def test_edit_two_images_and_a_mask(pictures, emulator):
    images = [("a.png", png("blue"), "image/png"), ("b.png", png("green"), "image/png")]
    result = pictures.client().images.edit(model="dall-e-2", image=images, mask=("m.png", png((0, 0, 0, 0)),
                                                                                  "image/png"),
                                           prompt=directive(emu="picture_v2", file_id="file_emu_edit2"))
    assert requests.get(result.data[0].url, timeout=10).content == blob(emulator, "file_emu_edit2")
    parts = last_conversation(emulator)["messages"][-1]["content"]["parts"]
    assert [isinstance(p, dict) for p in parts] == [True, True, True, False]  # sources, mask, then the prompt
    assert len({p["asset_pointer"] for p in parts[:3]}) == 3
    assert parts[3].endswith("edit only where it is transparent.)")


def post_edit(proxy, files, data=None):
    return requests.post(proxy.url + "/v1/images/edits", headers={"Authorization": "Bearer rt-img"},
                         files=files, data={"prompt": "make it blue", **(data or {})}, timeout=30)


@pytest.mark.parametrize("files,data,param,code", [
    ([], None, "image", None),
    ([("image", ("a.txt", b"not an image at all", "text/plain"))], None, "image", "invalid_image"),
    ([("image", ("fake.png", b"\x89PNG\r\n\x1a\nbroken", "image/png"))], None, "image", "invalid_image"),
    ([("image", ("big.png", png("red", (600, 600)) + bytes(9000), "image/png"))], None, "image", "file_too_large"),
    ([("image[]", (f"{i}.png", png("red"), "image/png")) for i in range(4)], None, "image", "too_many_files"),
    ([("image", ("a.png", png("red"), "image/png")), ("mask", ("m.txt", b"mask?", "text/plain"))], None, "mask",
     "invalid_image"),
    ([("image", ("a.png", png("red"), "image/png"))], {"prompt": ""}, "prompt", None),
    ([("image", ("a.png", png("red"), "image/png"))], {"n": "11"}, "n", None),
    ([("image", ("a.png", png("red"), "image/png"))], {"n": "two"}, "n", None),
    ([("image", ("a.png", png("red"), "image/png"))], {"size": "9x9"}, "size", None),
    ([("image", ("empty.png", b"", "image/png"))], None, "image", "invalid_image"),
    ([], {"image": "not a file but a text field"}, "image", None),
])
def test_bad_edits_are_400(pictures, emulator, files, data, param, code):
    before = len(emulator.conversations())
    response = post_edit(pictures, files or {"unrelated": ("x", b"x")}, data)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["code"] == code
    assert len(emulator.conversations()) == before  # nothing went upstream


def test_edits_want_multipart(pictures):
    response = requests.post(pictures.url + "/v1/images/edits", headers={"Authorization": "Bearer rt-img"},
                             json={"prompt": "x"}, timeout=10)
    assert response.status_code == 400 and "multipart" in response.json()["error"]["message"]


def test_edit_with_an_async_result_returns_the_new_image_not_the_source(pictures, emulator):
    result = pictures.client().images.edit(model="gpt-image-1", image=("src.png", png("purple"), "image/png"),
                                           prompt=directive(emu="picture_v2_async", file_id="file_emu_edit_async",
                                                            async_delay=0.3), response_format="b64_json")
    assert base64.b64decode(result.data[0].b64_json) == blob(emulator, "file_emu_edit_async")
    stored = requests.get(f"{emulator.url}/_emulator/requests", timeout=5).json()
    assert not any("/backend-api/files/" in r["path"] and r["path"].endswith("/download") for r in stored
                   if r["time"] > emulator.conversations()[-1]["time"])  # the source is never fetched back


def test_a_client_that_leaves_stops_the_polling(pictures, emulator):
    body = json.dumps({"model": "gpt-image-1", "prompt": directive(emu="picture_v2_async", async_delay=60)})
    with socket.create_connection(("127.0.0.1", pictures.port)) as client:
        client.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rt-img\r\n"
                       b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body.encode()))
        wait_until(lambda: emulator.streams()[-1]["scenario"] == "picture_v2_async"
                   and polls_of(emulator, conversation_id_of(emulator)), timeout=5, what="first poll")
        left_at = time.time()
    conversation_id = conversation_id_of(emulator)
    time.sleep(1.5)  # image_poll_timeout is 3 s: polling would go on past this if nobody noticed
    late = [p for p in polls_of(emulator, conversation_id) if p["time"] > left_at + 0.8]
    assert late == [] and len(polls_of(emulator, conversation_id)) >= 1


def polls_of(emulator, conversation_id: str) -> list:
    return emulator.requests(f"/backend-api/conversation/{conversation_id}")


@pytest.fixture(scope="module")
def elsewhere():
    """A listener on another loopback address: not the upstream's host, so off limits (not allowlisted)."""
    recorder = ContactRecorder("127.0.0.2").start()
    yield recorder
    recorder.stop()


def test_a_sediment_download_link_elsewhere_is_never_contacted(pictures, emulator, elsewhere):
    before = elsewhere.contacts
    emulator.configure(link_base=elsewhere.base)
    try:
        response = requests.post(pictures.url + "/v1/images/generations", headers={"Authorization": "Bearer rt-img"},
                                 json={"model": "gpt-image-1", "prompt": directive(emu="picture_v2")}, timeout=30)
    finally:
        emulator.configure(link_base="")
    assert response.status_code == 502 and response.json()["error"]["code"] == "image_download_failed"
    assert elsewhere.contacts == before
    # the link itself was asked for and handed out (the emulator serves it for this conversation only)
    assert downloads(emulator, conversation_id_of(emulator)) == ["file-emu-image/download"]


def test_a_pointer_that_is_not_an_id_never_reaches_an_upstream_path(pictures, emulator):
    response = requests.post(pictures.url + "/v1/images/generations", headers={"Authorization": "Bearer rt-img"},
                             json={"model": "gpt-image-1",
                                   "prompt": directive(emu="picture_v2", file_id="file_x/../../../me")}, timeout=30)
    assert response.status_code == 502 and response.json()["error"]["code"] == "image_download_failed"
    assert not [r for r in emulator.requests() if "/me" in r["path"] or "file_x" in r["path"]]


def test_gpt_image_answers_b64_json_unless_asked_for_url(pictures, emulator):
    """OpenAI's gpt-image models only answer b64_json, and code written for them reads it."""
    result = pictures.client().images.generate(model="gpt-image-1", prompt=directive(emu="picture_v2",
                                                                                     file_id="file_emu_default"))
    assert base64.b64decode(result.data[0].b64_json) == blob(emulator, "file_emu_default")
    assert result.data[0].url is None


def test_image_models_are_listed(pictures):
    assert {"gpt-image-1", "gpt-image", "dall-e-3"} <= {m.id for m in pictures.client().models.list()}


def test_an_edit_whose_token_was_rejected_refreshes_once_and_uploads_again(pictures, emulator):
    client = pictures.client("rt-edit-401")
    client.images.generate(model="gpt-image-1", prompt=directive(emu="picture_v2"))  # warms the token cache
    token = emulator.conversations()[-1]["headers"]["Authorization"].split()[1]
    emulator.revoke(token)
    before = len(emulator.requests("/backend-api/files"))
    result = client.images.edit(model="gpt-image-1", image=("o.png", png("orange"), "image/png"),
                                prompt=directive(emu="picture_v2", file_id="file_emu_refreshed"))
    assert base64.b64decode(result.data[0].b64_json) == blob(emulator, "file_emu_refreshed")
    creates = emulator.requests("/backend-api/files")[before:]
    assert [r["headers"]["Authorization"] == f"Bearer {token}" for r in creates] == [True, False]
    assert emulator.conversations()[-1]["headers"]["Authorization"] != f"Bearer {token}"


def test_image_conversations_are_hidden_when_configured(start_proxy, tmp_path_factory, emulator):
    root = tmp_path_factory.mktemp("images-hidden")
    proxy = start_proxy({"IMAGES_DIR": str(root / "images"), "FILES_DIR": str(root / "files"),
                         "NEED_DELETE_CONVERSATION_AFTER_RESPONSE": "true", "IMAGE_POLL_INTERVAL": "0.2"})
    proxy.client().images.generate(model="gpt-image-1",
                                   prompt=directive(emu="picture_v2_async", async_delay=0.3))
    conversation_id = conversation_id_of(emulator)
    sent = last_conversation(emulator)
    assert sent["history_and_training_disabled"] is False  # the late image is read from the stored conversation
    wait_until(lambda: emulator.requests(f"/backend-api/conversation/{conversation_id}")[-1]["method"] == "PATCH",
               timeout=5, what="hide")
    hide = emulator.requests(f"/backend-api/conversation/{conversation_id}")[-1]
    assert hide["json"] == {"is_visible": False}


# --- the same images in a chat reply (NextChat asking a chat model to draw) ------------------------

IMAGE_LINK = re.compile(r"!\[image\]\((http[^)]+)\)")


def nextchat_stream(proxy, content: str) -> str:
    """The reply text as NextChat reads a stream: `data:` lines, each chunk's delta.content."""
    response = requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-img"},
                             json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": content}]},
                             stream=True, timeout=30)
    assert response.status_code == 200
    text = []
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            choices = json.loads(line[5:])["choices"]
            text += [c["delta"].get("content") or "" for c in choices]
    return "".join(text)


@pytest.mark.parametrize("encoding", ["v1", "cumulative"])
def test_a_sediment_image_in_a_streamed_chat_reply(pictures, emulator, encoding):
    text = nextchat_stream(pictures, directive(emu="picture_v2", file_id="file_emu_chat1", encoding=encoding))
    links = IMAGE_LINK.findall(text)
    assert len(links) == 1 and "could not be downloaded" not in text, text  # the partial preview is not shown
    assert requests.get(links[0], timeout=10).content == blob(emulator, "file_emu_chat1")
    assert downloads(emulator, conversation_id_of(emulator)) == ["file_emu_chat1/download"]


def test_a_sediment_image_in_a_chat_completion(pictures, emulator):
    reply = pictures.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": directive(emu="picture_v2", file_id="file_emu_chat2")}])
    content = reply.choices[0].message.content
    links = IMAGE_LINK.findall(content)
    assert len(links) == 1 and requests.get(links[0], timeout=10).content == blob(emulator, "file_emu_chat2")
    assert "could not be downloaded" not in content  # no preview was tried
    assert downloads(emulator, conversation_id_of(emulator)) == ["file_emu_chat2/download"]
