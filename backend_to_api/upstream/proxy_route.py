"""Which outbound proxy the conversation call goes through, if any, and how it is asked.

Decided once per worker, as requests would decide it for the upstream's URL: the configured
``proxy``, else the environment (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY, NO_PROXY). Our own exchange
(``http1.py``) then connects to the proxy instead of the upstream: a CONNECT tunnel for an https
upstream, the absolute-form request for an http one, with Proxy-Authorization from the proxy URL's
user and password.
"""
from __future__ import annotations

import base64
from typing import List, NamedTuple, Optional, Tuple
from urllib.parse import urlsplit

import requests
from requests.utils import get_auth_from_url, get_environ_proxies, select_proxy

from ..errors import UpstreamError


class ProxyRoute(NamedTuple):
    host: str
    port: int
    headers: List[Tuple[str, str]]  # sent to the proxy: Proxy-Authorization when the URL has credentials


def proxy_route(upstream_root: str, proxy: str, session: requests.Session) -> Optional[ProxyRoute]:
    """The proxy for ``upstream_root`` (``proxy`` configured, else the environment when the
    session reads it), or None to connect straight."""
    url = proxy_url(upstream_root, proxy, session)
    return parse_proxy_url(url) if url else None


def proxy_url(upstream_root: str, proxy: str, session: requests.Session) -> Optional[str]:
    """The proxy URL for ``upstream_root`` as requests would choose it, or None: straight. Also
    what the upstream's download links are fetched through (guarded_fetch.upstream_url_fetcher)."""
    proxies = {"http": proxy, "https": proxy} if proxy else (
        get_environ_proxies(upstream_root) if session.trust_env else {})
    return select_proxy(upstream_root, proxies) if proxies else None


def parse_proxy_url(url: str) -> ProxyRoute:
    parts = urlsplit(url if "://" in url else "http://" + url)  # requests takes "host:port" as http too
    if parts.scheme != "http" or not parts.hostname:
        # TLS to the proxy itself (and a tunnel inside it) or SOCKS are not spoken by our exchange
        raise UpstreamError(502, f"The outbound proxy {parts.scheme}://{parts.hostname or ''} is not supported "
                                 "for the conversation call: use an http:// proxy (it tunnels https upstreams "
                                 "with CONNECT).", code="proxy_not_supported")
    user, password = get_auth_from_url(url)
    headers = []
    if user or password:
        credentials = base64.b64encode(f"{user}:{password}".encode("latin-1", "replace")).decode("ascii")
        headers.append(("Proxy-Authorization", f"Basic {credentials}"))
    return ProxyRoute(parts.hostname, parts.port or 80, headers)
