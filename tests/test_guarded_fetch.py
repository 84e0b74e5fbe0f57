"""The SSRF guard for client-supplied URLs, against real local servers (the emulator on 127.0.0.1)."""
from __future__ import annotations

import ipaddress

import pytest

from backend_to_api.errors import ApiError
from backend_to_api.upstream.guarded_fetch import Allowlist, GuardedFetcher, is_public


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2606:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1", False), ("fd00:ec2::254", False), ("::ffff:127.0.0.1", False),
    ("240.0.0.1", False),
])
def test_address_classes(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


def test_loopback_is_refused_after_resolution(emulator):
    fetcher = GuardedFetcher(Allowlist.parse([]), max_bytes=1 << 20)
    for url in (emulator.url + "/_emulator/health", emulator.url.replace("127.0.0.1", "localhost") + "/_emulator/health"):
        with pytest.raises(ApiError) as info:
            fetcher.fetch(url, param="messages[0].content[1].image_url")
        assert info.value.status == 400 and info.value.code == "url_not_allowed"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://example.com/x", "http:///nohost"])
def test_only_http_and_https(url):
    with pytest.raises(ApiError) as info:
        GuardedFetcher(Allowlist.parse([]), max_bytes=100).fetch(url)
    assert info.value.status == 400


def test_allowlist_admits_a_deliberate_private_host(emulator):
    fetcher = GuardedFetcher(Allowlist.parse(["127.0.0.0/8"]), max_bytes=1 << 20)
    fetched = fetcher.fetch(emulator.url + "/_emulator/health")
    assert fetched.content and fetched.content_type == "application/json"
    by_name = GuardedFetcher(Allowlist.parse(["localhost"]), max_bytes=1 << 20)
    assert by_name.fetch(emulator.url.replace("127.0.0.1", "localhost") + "/_emulator/health").content


def test_size_cap_is_413(emulator):
    fetcher = GuardedFetcher(Allowlist.parse(["127.0.0.1/32"]), max_bytes=5)
    with pytest.raises(ApiError) as info:
        fetcher.fetch(emulator.url + "/_emulator/health")
    assert info.value.status == 413
