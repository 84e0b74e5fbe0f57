"""Fetching URLs that clients supply (image_url parts), without becoming an SSRF relay.

The original fetched any URL a client sent, loopback and cloud metadata included, and uploaded the
answer to ChatGPT for the caller to read back. Here:
- only http and https;
- the address each connection actually reaches is checked *after* connecting (so DNS rebinding and
  hostnames that resolve to private space gain nothing), for the first request and every redirect;
- loopback, private, link-local (cloud metadata), multicast, reserved, unspecified and shared
  (CGNAT) addresses are refused unless an allowlist entry (host name or CIDR) names them;
- redirects, time and size are capped.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple, Union
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..errors import ApiError, bad_request

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

# Named explicitly although the generic checks cover them: these are what attackers aim at.
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                      ipaddress.ip_address("100.100.100.200")}
SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")


class RefusedAddress(OSError):
    """A connection reached an address we do not fetch from (an OSError, so urllib3 and requests
    wrap it like any failed connection and never retry it: max_retries is 0)."""


@dataclass(frozen=True)
class Allowlist:
    hosts: frozenset
    networks: Tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> "Allowlist":
        hosts, networks = set(), []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower())
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        return host.lower() in self.hosts or any(address in network for network in self.networks)


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address in METADATA_ADDRESSES
        or address.is_loopback or address.is_private or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in SHARED_SPACE)
    )


def check_peer(sock: socket.socket, host: str, allowlist: Allowlist) -> None:
    peer = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
    if not is_public(peer) and not allowlist.allows(host, peer):
        raise RefusedAddress(f"{host} resolves to a non-public address")


def _guarded(connection_class: type, allowlist: Allowlist) -> type:
    class Guarded(connection_class):  # type: ignore[misc, valid-type]
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            try:
                check_peer(sock, self.host, allowlist)
            except Exception:
                sock.close()
                raise
            return sock

    return Guarded


class GuardedAdapter(HTTPAdapter):
    """An adapter whose every new connection is checked (redirects reuse the same adapter)."""

    def __init__(self, allowlist: Allowlist) -> None:
        self._allowlist = allowlist
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        http_pool = type("GuardedHTTPPool", (HTTPConnectionPool,),
                         {"ConnectionCls": _guarded(HTTPConnection, self._allowlist)})
        https_pool = type("GuardedHTTPSPool", (HTTPSConnectionPool,),
                          {"ConnectionCls": _guarded(HTTPSConnection, self._allowlist)})
        self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}


@dataclass(frozen=True)
class FetchedFile:
    content: bytes
    content_type: str
    url: str


class GuardedFetcher:
    """The one way client-supplied URLs are opened."""

    def __init__(self, allowlist: Allowlist, max_bytes: int, timeout: Tuple[float, float] = (5.0, 20.0),
                 max_redirects: int = 3) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # never route client URLs through an operator's proxy settings
        self.session.max_redirects = max_redirects
        adapter = GuardedAdapter(allowlist)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def fetch(self, url: str, param: Optional[str] = None) -> FetchedFile:
        _check_scheme(url, param)
        try:
            with self.session.get(url, timeout=self.timeout, stream=True,
                                  headers={"User-Agent": "backend-to-api/1 (+image fetch)"}) as response:
                if response.status_code != 200:
                    raise bad_request(f"Fetching {_short(url)} failed: HTTP {response.status_code}.", param=param)
                return FetchedFile(self._read_capped(response, url, param),
                                   response.headers.get("Content-Type", "").split(";")[0].strip().lower(),
                                   response.url)
        except ApiError:
            raise
        except requests.TooManyRedirects:
            raise bad_request(f"Fetching {_short(url)} failed: too many redirects.", param=param) from None
        except requests.ConnectionError as exc:
            if _refused(exc):
                raise bad_request(f"Refused to fetch {_short(url)}: it points to a private or local address.",
                                  param=param, code="url_not_allowed") from None
            raise bad_request(f"Fetching {_short(url)} failed: could not connect.", param=param) from None
        except requests.Timeout:
            raise bad_request(f"Fetching {_short(url)} failed: timed out.", param=param) from None
        except requests.RequestException as exc:
            raise bad_request(f"Fetching {_short(url)} failed: {exc.__class__.__name__}.", param=param) from None

    def _read_capped(self, response: requests.Response, url: str, param: Optional[str]) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise _too_large(url, self.max_bytes, param)
        chunks, size = [], 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise _too_large(url, self.max_bytes, param)
            chunks.append(chunk)
        return b"".join(chunks)


def _check_scheme(url: str, param: Optional[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request("Only http and https URLs can be fetched.", param=param, code="url_not_allowed")


def _refused(exc: BaseException, depth: int = 0) -> bool:
    """Whether a RefusedAddress is inside requests' ConnectionError(MaxRetryError(ProtocolError(...)))."""
    if isinstance(exc, RefusedAddress):
        return True
    if depth > 6:
        return False
    inner = [getattr(exc, "reason", None), exc.__cause__, exc.__context__, *exc.args]
    return any(isinstance(e, BaseException) and _refused(e, depth + 1) for e in inner)


def _too_large(url: str, limit: int, param: Optional[str]) -> ApiError:
    return ApiError(413, f"The file at {_short(url)} is larger than {limit} bytes.", "invalid_request_error",
                    code="file_too_large", param=param)


def _short(url: str) -> str:
    return url if len(url) <= 80 else url[:77] + "..."
