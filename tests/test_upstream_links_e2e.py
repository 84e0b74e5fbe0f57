"""URLs the upstream hands back (download_url of images and sandbox files, the upload_url of an
input file) go through the same address checks as client URLs, with the upstream's own host and
url_fetch_allowlist allowed; ids from the upstream never change the upstream path we call.

Everything runs on loopback: the emulator (the upstream, 127.0.0.1) hands out links on 127.0.0.2,
where a real listener counts every connection it accepts (tests/contact_recorder.py). Each refusal
has a control in which the same link is allowed and the listener does see the fetch.
"""
from __future__ import annotations

import base64
import tempfile
import uuid
from contextlib import contextmanager
from urllib.parse import quote

import openai
import pytest

from .conftest import TLS_CERT, Emulator, Proxy, directive
from .contact_recorder import PNG, ContactRecorder
from .test_http_proxy_e2e import ForwardProxy

UNAVAILABLE_IMAGE = "[image could not be downloaded]"
UNAVAILABLE_FILE = "Saved: [report.csv] (file unavailable) (CSV). Done."


@pytest.fixture(scope="module")
def elsewhere():
    """A listener on another loopback address: not the upstream's host, so off limits unless listed."""
    recorder = ContactRecorder("127.0.0.2").start()
    yield recorder
    recorder.stop()


@contextmanager
def links_on(emulator, base: str):
    emulator.configure(link_base=base)
    try:
        yield
    finally:
        emulator.configure(link_base="")


def media_env(tmp_path_factory, allowlist: str) -> dict:
    root = tmp_path_factory.mktemp("links")
    return {"URL_FETCH_ALLOWLIST": allowlist, "IMAGES_DIR": str(root / "images"), "FILES_DIR": str(root / "files")}


def media_proxy(start_proxy, tmp_path_factory, allowlist: str, **env: str):
    return start_proxy({**media_env(tmp_path_factory, allowlist), **env})


@pytest.fixture(scope="module")
def strict(start_proxy, tmp_path_factory):
    return media_proxy(start_proxy, tmp_path_factory, "")


@pytest.fixture(scope="module")
def listed(start_proxy, tmp_path_factory):
    return media_proxy(start_proxy, tmp_path_factory, "127.0.0.2")


def chat(proxy, **values) -> str:
    reply = proxy.client(timeout=60).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": directive(**values)}])
    return reply.choices[0].message.content


def send_image(proxy, url: str = "data:image/png;base64," + base64.b64encode(PNG).decode()):
    content = [{"type": "text", "text": directive(emu="inputs")}, {"type": "image_url", "image_url": {"url": url}}]
    return proxy.client(timeout=60).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])


# ------------------------------------------------------------------------------- downloads

def test_the_upstreams_own_host_needs_no_allowlist(strict, emulator):
    # url_fetch_allowlist is empty, the upstream is on loopback, and its download links work.
    text = chat(strict, emu="dalle", file_id="file-own-host", after="A fox.")
    assert "/images/" in text and UNAVAILABLE_IMAGE not in text
    assert "/files/" in chat(strict, emu="sandbox")


@pytest.mark.parametrize("emu,note", [("dalle", UNAVAILABLE_IMAGE), ("python_image", UNAVAILABLE_IMAGE),
                                      ("sandbox", UNAVAILABLE_FILE)])
def test_a_download_link_to_another_local_address_is_never_contacted(strict, emulator, elsewhere, emu, note):
    before = elsewhere.contacts
    with links_on(emulator, elsewhere.base):
        text = chat(strict, emu=emu)
    assert note in text  # a short note, the reply otherwise whole
    assert elsewhere.contacts == before


@pytest.mark.parametrize("emu,route", [("dalle", "/images/"), ("sandbox", "/files/")])
def test_an_allowlisted_address_is_fetched(listed, emulator, elsewhere, emu, route):
    before = elsewhere.contacts
    with links_on(emulator, elsewhere.base):
        text = chat(listed, emu=emu)
    assert route in text and UNAVAILABLE_IMAGE not in text and "unavailable" not in text
    assert elsewhere.contacts == before + 1 and elsewhere.paths[-1].startswith("/_emulator/blob/")


def test_a_redirect_from_an_allowed_link_to_a_local_address_is_not_followed(strict, emulator, elsewhere):
    # the link is on the upstream's host (allowed); it redirects to 127.0.0.2 (not allowed)
    before = elsewhere.contacts
    redirect = f"{emulator.url}/_emulator/redirect_to?url={quote(elsewhere.base + '/x.png', safe='')}"
    with links_on(emulator, redirect + "&ignored="):
        text = chat(strict, emu="dalle")
    assert UNAVAILABLE_IMAGE in text and elsewhere.contacts == before


def test_links_go_through_the_operators_proxy_after_the_check(start_proxy, tmp_path_factory, emulator, elsewhere):
    forward = ForwardProxy()
    try:
        proxy = media_proxy(start_proxy, tmp_path_factory, "", PROXY=forward.url)
        assert "/images/" in chat(proxy, emu="dalle", file_id="file-via-proxy")
        assert ("GET", "/_emulator/blob/file-via-proxy") in forward.seen
        before = elsewhere.contacts
        with links_on(emulator, elsewhere.base):
            assert UNAVAILABLE_IMAGE in chat(proxy, emu="dalle", file_id="file-via-proxy-2")
        assert elsewhere.contacts == before
        assert not [seen for seen in forward.seen if "/_emulator/blob/file-via-proxy-2" in seen[1]]
    finally:
        forward.close()


@pytest.fixture(scope="module")
def tls_emulator():
    emulator = Emulator(tls=True).start()
    yield emulator
    emulator.stop()


def test_tls_links_are_verified_for_their_name_on_the_checked_address(tls_emulator, redis_server, workdir,
                                                                       tmp_path_factory):
    # The connection goes to the address we checked; SNI and the certificate check keep the URL's
    # name (the test certificate names 127.0.0.1 and localhost). "/images/": the PNG was saved.
    env = {**media_env(tmp_path_factory, "localhost"), "REQUESTS_CA_BUNDLE": TLS_CERT}
    proxy = Proxy(tls_emulator, redis_server.port, tempfile.mkdtemp(dir=workdir), env).start()
    try:
        assert "/images/" in chat(proxy, emu="dalle", file_id="file-tls-ip")  # https://127.0.0.1:...
        with links_on(tls_emulator, tls_emulator.url.replace("127.0.0.1", "localhost")):
            assert "/images/" in chat(proxy, emu="dalle", file_id="file-tls-name")
    finally:
        proxy.stop()


# ------------------------------------------------------------------------------- uploads

def test_an_upload_link_to_another_local_address_is_never_contacted(strict, emulator, elsewhere):
    before = elsewhere.contacts
    with links_on(emulator, elsewhere.base):
        with pytest.raises(openai.APIStatusError) as info:
            send_image(strict)
    assert info.value.status_code == 502 and info.value.body["code"] == "upload_failed"
    assert elsewhere.contacts == before


def test_an_allowlisted_upload_link_is_used(listed, emulator, elsewhere):
    before = elsewhere.contacts
    with links_on(emulator, elsewhere.base):
        with pytest.raises(openai.APIStatusError):  # the bytes went to the listener, not the emulator
            send_image(listed)
    assert elsewhere.contacts == before + 1 and elsewhere.paths[-1].startswith("/_emulator/upload/file-")


# ------------------------------------------------------------------------------- ids in paths

def segment(value):
    from backend_to_api.upstream.path_segments import segment as checked  # (here: the e2e tests above
    return checked(value)                                                 # also run against old builds)


@pytest.mark.parametrize("value", ["file-abc_123", "g-AbC-my-gpt", str(uuid.uuid4())])
def test_ids_pass_as_path_segments(value):
    assert segment(value) == value


@pytest.mark.parametrize("value", ["../../x", "..", "a/b?c", "a%2Fb", "", "x" * 257, None, "file-1\n"])
def test_anything_else_is_never_a_path_segment(value):
    with pytest.raises(ValueError):
        segment(value)


@pytest.mark.parametrize("file_id", ["../../accounts/check", "a/b?c", "..", "file-1/../../me", "a%2Fb"])
def test_an_upstream_file_id_never_changes_the_path(strict, emulator, file_id):
    seen = len(emulator.requests())
    text = chat(strict, emu="dalle", file_id=file_id)
    assert UNAVAILABLE_IMAGE in text
    paths = [r["path"] for r in emulator.requests()[seen:]]
    # the chat itself (and a hide, a refresh) only: no download link was even asked for
    assert all(p.startswith("/backend-api/conversation") or p in ("/applelogin", "/oauth/token") for p in paths), paths
