"""Every URL we are handed, by a client (image_url parts) or by the upstream (download_url,
upload_url), is opened here, so the service never becomes an SSRF relay:
- only http and https;
- the host is resolved once, here, and only addresses that pass the check are connected to; the
  connection goes to that very address (the Host header, SNI and certificate check keep the name),
  so DNS rebinding between check and connect has nothing to rebind;
- loopback, private, link-local (cloud metadata), multicast, reserved, unspecified and shared
  (CGNAT) addresses are refused unless an allowlist entry (host name or CIDR) names them: for
  client URLs ``url_fetch_allowlist``, for upstream URLs that plus the upstream's own host (a mirror
  on a private network hands out download links on itself);
- redirects are followed by hand (``get_following``), each hop checked like the first.

Only urllib3's public API is used (a pool per fetch aimed at the checked address, with
``server_hostname``/``assert_hostname`` for TLS): no connection subclass, no private hook.
Through an operator's outbound proxy the proxy connects, so only the name can be checked (resolved
here when it resolves; a literal address always).
"""
from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Mapping, NamedTuple, Optional, Tuple, Union

import certifi
import urllib3
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProxySchemeUnknown

from ..settings import Settings

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

# Named explicitly although the generic checks cover them: these are what attackers aim at.
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                      ipaddress.ip_address("100.100.100.200")}
SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")
REDIRECTS = (301, 302, 303, 307, 308)
MAX_ADDRESSES = 4  # of one name, tried in turn when connecting fails (nothing was sent to the others)


class RefusedAddress(Exception):
    """The URL points somewhere we do not fetch from (nothing was sent there)."""


class FetchFailed(Exception):
    """A redirect without a usable Location, or too many of them."""


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

    def with_host(self, host: Optional[str]) -> "Allowlist":
        """This list plus one host name (the upstream's own, for the URLs it hands back)."""
        return Allowlist(self.hosts | {host.lower()}, self.networks) if host else self


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


def allowed_addresses(host: str, port: int, allowlist: Allowlist) -> List[IPAddress]:
    """The addresses of ``host`` we may connect to, in resolver order; RefusedAddress when it has
    some but none of them passes (so nothing, not even a SYN, reaches an internal host)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)  # OSError: the lookup failed
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
    allowed = [a for a in addresses if is_public(a) or allowlist.allows(host, a)]
    if not allowed:
        raise RefusedAddress(f"{host} points to a private or local address")
    return allowed[:MAX_ADDRESSES]


def check_before_proxy(host: str, port: int, allowlist: Allowlist) -> None:
    """The check for a host the operator's proxy will connect to: RefusedAddress when its name
    resolves here to refused addresses (a literal address always does); a name that does not
    resolve here passes, since only the proxy can resolve it: the proxy is the operator's boundary then."""
    try:
        allowed_addresses(host, port, allowlist)
    except socket.gaierror:
        pass


class Target(NamedTuple):
    scheme: str
    host: str       # lower case, no brackets
    port: int
    authority: str  # the Host header: as the URL wrote it, without user info
    path: str       # path and query


def parse_target(url: str) -> Target:
    """RefusedAddress for anything but an http(s) URL with a host; ValueError when malformed."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RefusedAddress("only http and https URLs can be fetched")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, parts.netloc.rpartition("@")[2], path)


class Opened(NamedTuple):
    response: urllib3.BaseHTTPResponse
    url: str  # after redirects


class GuardedFetcher:
    """Opens URLs we were handed, each connection aimed only at an address that passed the check."""

    def __init__(self, allowlist: Allowlist, ca_bundle: str, proxy: Optional[str] = None) -> None:
        self.allowlist = allowlist
        self.ca_bundle = ca_bundle
        # The operator's outbound proxy (upstream URLs only: it must never carry client URLs).
        self._proxy: Optional[urllib3.ProxyManager] = None
        self._proxy_problem = ""  # e.g. socks5://: urllib3 alone does not speak it; fetches say so
        try:
            self._proxy = _proxy_manager(proxy, ca_bundle) if proxy else None
        except (ProxySchemeUnknown, ValueError) as exc:
            self._proxy_problem = f"the outbound proxy is not usable for downloads ({exc})"

    @contextmanager
    def open(self, method: str, url: str, headers: Mapping[str, str], timeout: urllib3.Timeout,
             body: Optional[bytes] = None) -> Iterator[urllib3.BaseHTTPResponse]:
        """One request, no redirect followed; the response (body unread) is closed on exit."""
        target = parse_target(url)
        if self._proxy_problem:
            raise FetchFailed(self._proxy_problem)
        pool: Optional[urllib3.HTTPConnectionPool] = None  # a direct request's own pool, closed with it
        if self._proxy is not None:
            response = self._via_proxy(method, url, target, headers, timeout, body)
        else:
            pool, response = self._direct(method, target, headers, timeout, body)
        try:
            yield response
        finally:
            response.close()
            if pool is not None:
                pool.close()

    @contextmanager
    def get_following(self, url: str, headers: Mapping[str, str], timeout: urllib3.Timeout,
                      max_redirects: int) -> Iterator[Opened]:
        """GET, following at most ``max_redirects`` redirects, every hop checked like the first."""
        current = url
        for _ in range(max_redirects + 1):
            with self.open("GET", current, headers, timeout) as response:
                if response.status not in REDIRECTS:
                    yield Opened(response, current)
                    return
                current = _next_hop(current, response)
        raise FetchFailed(f"more than {max_redirects} redirects")

    def _direct(self, method: str, target: Target, headers: Mapping[str, str], timeout: urllib3.Timeout,
                body: Optional[bytes]) -> Tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
        *others, last = allowed_addresses(target.host, target.port, self.allowlist)
        for address in others:
            try:
                return self._request(address, method, target, headers, timeout, body)
            except (NewConnectionError, ConnectTimeoutError):
                continue  # the connection failed, so nothing was sent: the next address may work
        return self._request(last, method, target, headers, timeout, body)

    def _request(self, address: IPAddress, method: str, target: Target, headers: Mapping[str, str],
                 timeout: urllib3.Timeout, body: Optional[bytes]
                 ) -> Tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
        pool = self._pool(target, address, timeout)
        try:
            return pool, pool.urlopen(method, target.path, body=body, headers={**headers, "Host": target.authority},
                                      retries=False, redirect=False, preload_content=False,
                                      assert_same_host=False, timeout=timeout)
        except BaseException:
            pool.close()
            raise

    def _pool(self, target: Target, address: IPAddress, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
        if target.scheme == "http":
            return urllib3.HTTPConnectionPool(str(address), target.port, timeout=timeout, retries=False)
        return urllib3.HTTPSConnectionPool(str(address), target.port, timeout=timeout, retries=False,
                                           cert_reqs="CERT_REQUIRED", ca_certs=self.ca_bundle,
                                           server_hostname=target.host, assert_hostname=target.host)

    def _via_proxy(self, method: str, url: str, target: Target, headers: Mapping[str, str],
                   timeout: urllib3.Timeout, body: Optional[bytes]) -> urllib3.BaseHTTPResponse:
        check_before_proxy(target.host, target.port, self.allowlist)
        assert self._proxy is not None  # (only called when there is one)
        return self._proxy.urlopen(method, url, body=body, headers=dict(headers), retries=False, redirect=False,
                                   preload_content=False, timeout=timeout)


def _next_hop(current: str, response: urllib3.BaseHTTPResponse) -> str:
    location = response.headers.get("Location")
    if not location:
        raise FetchFailed(f"HTTP {response.status} without a Location")
    try:
        return urllib.parse.urljoin(current, location)
    except ValueError:
        raise FetchFailed("a redirect pointed to a malformed URL") from None


def _proxy_manager(proxy: str, ca_bundle: str) -> urllib3.ProxyManager:
    auth = urllib.parse.unquote(urllib.parse.urlsplit(proxy).netloc.rpartition("@")[0])
    headers = urllib3.make_headers(proxy_basic_auth=auth) if auth else None
    return urllib3.ProxyManager(proxy, proxy_headers=headers, cert_reqs="CERT_REQUIRED", ca_certs=ca_bundle)


def client_url_fetcher(settings: Settings) -> GuardedFetcher:
    """For client URLs: private space only through ``url_fetch_allowlist``; never through the
    operator's proxy nor with the operator's CA bundle (neither is the client's to use)."""
    return GuardedFetcher(Allowlist.parse(settings.url_fetch_allowlist.split(",")), certifi.where())


def upstream_url_fetcher(settings: Settings, ca_bundle: str, proxy: Optional[str]) -> GuardedFetcher:
    """For the URLs the upstream hands back: the allowlist plus the upstream's own host, with the
    upstream's CA bundle and outbound proxy (``UpstreamClient.ca_bundle`` and ``.proxy_url``: the
    same ones its API calls use)."""
    root = settings.upstream_root
    allowlist = Allowlist.parse(settings.url_fetch_allowlist.split(",")).with_host(urllib.parse.urlsplit(root).hostname)
    return GuardedFetcher(allowlist, ca_bundle, proxy)
