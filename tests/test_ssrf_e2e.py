"""The SSRF guard on client-supplied image/file URLs, through the proxy with the openai SDK."""
from __future__ import annotations

import ipaddress
import uuid
from urllib.parse import quote

import openai
import pytest

from backend_to_api.upstream.guarded_fetch import Allowlist, is_public

from .conftest import directive


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
def guarded(start_proxy):
    return start_proxy({"URL_FETCH_ALLOWLIST": ""})


@pytest.mark.parametrize("make_url", [
    lambda e: e.url + "/_emulator/asset/image.png",                                   # loopback by IP
    lambda e: e.url.replace("127.0.0.1", "localhost") + "/_emulator/asset/image.png",  # by a name
    lambda e: "http://169.254.169.254/latest/meta-data/",                             # cloud metadata
    lambda e: "http://[::1]:9/x.png",
    lambda e: "http://10.255.255.1/x.png",
])
def test_private_and_local_addresses_are_refused(guarded, emulator, make_url):
    with pytest.raises(openai.BadRequestError) as info:
        ask(guarded, make_url(emulator))
    assert info.value.body["code"] == "url_not_allowed"
    assert not any(r["path"].startswith("/_emulator/asset") for r in emulator.requests())


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/x", "ftp://example.com/x.png"])
def test_only_http_and_https(guarded, url):
    with pytest.raises(openai.BadRequestError) as info:
        ask(guarded, url)
    assert info.value.body["code"] == "url_not_allowed"


def test_every_redirect_is_checked(start_proxy, emulator):
    # "localhost" is allowed by name; the redirect it answers leads to 127.0.0.1, which is not.
    proxy = start_proxy({"URL_FETCH_ALLOWLIST": "localhost"})
    start = emulator.url.replace("127.0.0.1", "localhost")
    target = quote(emulator.url + "/_emulator/asset/image.png", safe="")
    with pytest.raises(openai.BadRequestError) as info:
        ask(proxy, f"{start}/_emulator/redirect_to?url={target}")
    assert info.value.body["code"] == "url_not_allowed"
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
