"""Connections for URLs that clients supply (image_url parts), without becoming an SSRF relay.

The original fetched any URL a client sent, loopback and cloud metadata included, and uploaded the
answer to ChatGPT for the caller to read back. Here:
- only http and https;
- the address each connection actually reaches is checked *after* connecting (so DNS rebinding and
  hostnames that resolve to private space gain nothing), for the first request and every redirect;
- loopback, private, link-local (cloud metadata), multicast, reserved, unspecified and shared
  (CGNAT) addresses are refused unless an allowlist entry (host name or CIDR) names them;
- redirects, time and size are capped by the caller (translate/fetch.py), which opens every client
  URL through ``guarded_session``.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Iterable, Tuple, Union

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


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
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:
            return False
        # IPv4 inside IPv6 (mapped, 6to4, Teredo) is judged by the IPv4 address it carries.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return is_public(embedded)
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


def check_resolved(host: str, port: int, allowlist: Allowlist) -> None:
    """Before connecting: a host whose every address is off limits is refused without a packet
    sent, so refused-versus-closed ports of internal hosts tell a caller nothing."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return  # let the connection attempt report the lookup failure
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    if addresses and not any(is_public(a) or allowlist.allows(host, a) for a in addresses):
        raise RefusedAddress(f"{host} resolves to a non-public address")


def _guarded(connection_class: type, allowlist: Allowlist) -> type:
    class Guarded(connection_class):  # type: ignore[misc, valid-type]
        def _new_conn(self) -> socket.socket:
            check_resolved(self.host, self.port, allowlist)
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


def guarded_session(allowlist: Allowlist) -> requests.Session:
    """The session for client-supplied URLs: every connection checked, no proxy from the
    environment (an operator's proxy must not carry client traffic), no automatic retries."""
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(allowlist)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def is_refused(exc: BaseException, depth: int = 0) -> bool:
    """Whether a RefusedAddress is inside requests' ConnectionError(MaxRetryError(ProtocolError(...)))."""
    if isinstance(exc, RefusedAddress):
        return True
    if depth > 6:
        return False
    inner = [getattr(exc, "reason", None), exc.__cause__, exc.__context__, *exc.args]
    return any(isinstance(e, BaseException) and is_refused(e, depth + 1) for e in inner)
