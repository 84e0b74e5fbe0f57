"""The SSRF guard on client-supplied image/file URLs, through the proxy with the openai SDK; the
URLs the upstream hands back (download and upload links) are in test_upstream_links_e2e.py.

A refused URL is proven never contacted by a real listener that counts the connections it accepts
(tests/contact_recorder.py), next to a control that shows the same listener counts an allowed fetch."""
from __future__ import annotations

import ipaddress
import uuid
from urllib.parse import quote

import openai
import pytest

from backend_to_api.upstream.guarded_fetch import Allowlist, is_public

from .conftest import directive
from .contact_recorder import ContactRecorder


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def ask(proxy, url: str):
    content = [{"type": "text", "text": directive(emu="inputs")}, image_part(url)]
    return proxy.client("rt-ssrf-" + uuid.uuid4().hex).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": content}])


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2606:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1", False), ("fd00:ec2::254", False), ("::ffff:127.0.0.1", False),
    ("::ffff:169.254.169.254", False), ("240.0.0.1", False), ("100.100.100.200", False),
])
def test_address_classes(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


def test_allowlist_entries():
    allow = Allowlist.parse(["10.0.0.0/8", " files.intranet ", ""])
    assert allow.allows("anything", ipaddress.ip_address("10.2.3.4"))
    assert allow.allows("FILES.intranet", ipaddress.ip_address("192.168.0.9"))
    assert not allow.allows("other", ipaddress.ip_address("192.168.0.9"))


@pytest.fixture(scope="module")
def recorders():
    """Listeners on two loopback addresses: 127.0.0.1 (the upstream's host, so allowed for upstream
    links) and 127.0.0.2 (loopback, allowed for nobody unless listed)."""
    started = {host: ContactRecorder(host).start() for host in ("127.0.0.1", "127.0.0.2")}
    yield started
    for recorder in started.values():
        recorder.stop()


@pytest.fixture(scope="module")
def guarded(start_proxy, tmp_path_factory):
    root = tmp_path_factory.mktemp("guarded")
    return start_proxy({"URL_FETCH_ALLOWLIST": "", "IMAGES_DIR": str(root / "images"), "FILES_DIR": str(root / "files")})


def refused(proxy, url: str) -> str:
    with pytest.raises(openai.BadRequestError) as info:
        ask(proxy, url)
    return info.value.body["code"]


@pytest.mark.parametrize("host,make_url", [
    ("127.0.0.1", lambda r: r.base + "/image.png"),                                  # loopback by IP
    ("127.0.0.1", lambda r: r.base.replace("127.0.0.1", "localhost") + "/image.png"),  # by a name
    ("127.0.0.1", lambda r: r.base.replace("127.0.0.1", "[::ffff:127.0.0.1]") + "/x"),  # IPv4 in IPv6
    ("127.0.0.2", lambda r: r.base + "/image.png"),                                  # the rest of 127/8
])
def test_private_and_local_addresses_are_refused_and_never_contacted(guarded, recorders, host, make_url):
    recorder = recorders[host]
    before = recorder.contacts
    assert refused(guarded, make_url(recorder)) == "url_not_allowed"
    assert recorder.contacts == before  # not even a TCP connection


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[::1]:9/x.png",
                                 "http://10.255.255.1/x.png", "http://0.0.0.0:9/x.png"])
def test_metadata_and_private_networks_are_refused(guarded, url):
    # (nothing can listen there in a test: the code says the guard refused, not a failed connection)
    assert refused(guarded, url) == "url_not_allowed"


def test_the_witness_sees_a_fetch_that_is_allowed(proxy, recorders):
    # The same listener, fetched through a proxy that allows 127.0.0.1: the recorder counts it, so
    # its silence in the tests above means something.
    recorder = recorders["127.0.0.1"]
    before = recorder.contacts
    reply = ask(proxy, recorder.base + "/image.png")
    assert '"multimodal_text"' in reply.choices[0].message.content
    assert recorder.contacts == before + 1 and recorder.paths[-1] == "/image.png"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/x", "ftp://example.com/x.png"])
def test_only_http_and_https(guarded, url):
    with pytest.raises(openai.BadRequestError) as info:
        ask(guarded, url)
    assert info.value.body["code"] == "url_not_allowed"


def test_every_redirect_is_checked(start_proxy, emulator, recorders):
    # "localhost" is allowed by name; the redirect it answers leads to 127.0.0.2, which is not.
    proxy = start_proxy({"URL_FETCH_ALLOWLIST": "localhost"})
    recorder = recorders["127.0.0.2"]
    start = emulator.url.replace("127.0.0.1", "localhost")
    target = quote(recorder.base + "/image.png", safe="")
    before = recorder.contacts
    assert refused(proxy, f"{start}/_emulator/redirect_to?url={target}") == "url_not_allowed"
    assert recorder.contacts == before
    # and the allowed name itself works
    reply = ask(proxy, start + "/_emulator/asset/image.png")
    assert reply.choices[0].message.content


def test_allowlisted_cidr_is_fetched(proxy, emulator):
    reply = ask(proxy, emulator.url + "/_emulator/asset/image.png")  # the test default allows 127.0.0.1
    assert '"multimodal_text"' in reply.choices[0].message.content


def test_request_body_cap_is_413(start_proxy):
    import requests

    proxy = start_proxy({"MAX_REQUEST_BYTES": "2048"})
    response = requests.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer rt-big"},
                             json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 5000}]}, timeout=10)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


def test_too_many_files_is_400(proxy, emulator):
    parts = [image_part(emulator.url + "/_emulator/asset/image.png")] * 11
    with pytest.raises(openai.BadRequestError) as info:
        proxy.client("rt-many").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": [{"type": "text", "text": "x"}, *parts]}])
    assert info.value.body["code"] == "too_many_files"


def test_non_stream_deadline_is_504(start_proxy):
    proxy = start_proxy({"NON_STREAM_DEADLINE": "2", "KEEP_ALIVE_INTERVAL": "0.5"})
    with pytest.raises(openai.APIStatusError) as info:
        proxy.client("rt-deadline").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": directive(text="slow drip", chunk=1, interval=0.5)}])
    assert info.value.status_code == 504
