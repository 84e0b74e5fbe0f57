"""The bytes behind an ``image_url`` part: a data: URI decoded, or an http(s) URL downloaded.

Every client URL, redirects included, is opened by ``open_client_url``: that is the one place where
an outbound-address check (the SSRF guard of issue 5) goes. Downloads are bounded in size, time and
redirects, because the original fetched anything with no limit at all (spec/original-behaviour.md 7.3).
"""
from __future__ import annotations

import base64
import binascii
import time
import urllib.parse
from dataclasses import dataclass
from typing import Optional

import requests

from ..bounded_read import read_bounded
from ..errors import ApiError, bad_request
from ..upstream.guarded_fetch import is_refused

CHUNK = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)
WHOLE_DOWNLOAD = 4  # a slow drip of bytes must not hold a request (and a worker greenlet) forever
USER_AGENT = "Mozilla/5.0 (compatible; backend-to-api file fetcher)"


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    timeout: float      # per connect and per read; the whole download gets WHOLE_DOWNLOAD times it
    max_redirects: int


@dataclass(frozen=True)
class Fetched:
    data: bytes
    declared_mime: str          # what the data: URI or the Content-Type said ("" when nothing)
    name: Optional[str] = None  # the last path segment of the URL, when it has one


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"An image or file in the request is larger than {limit} bytes.",
                    "invalid_request_error", code="file_too_large", param="messages")


def _shown(url: str) -> str:
    return url if len(url) <= 200 else url[:200] + "..."


def unfetchable(url: str, why: str) -> ApiError:
    return bad_request(f"Could not fetch the image or file at {_shown(url)}: {why}.", param="messages",
                       code="invalid_image_url")


# --- data: URIs ------------------------------------------------------------------------------

def decode_data_uri(uri: str, max_bytes: int) -> Fetched:
    """``data:[<mime>][;param]*[;base64],<payload>`` (RFC 2397): base64 or percent-encoded."""
    header, comma, payload = uri[5:].partition(",")
    if not comma:
        raise bad_request("A data: URI in the request has no ',' before its data.", param="messages",
                          code="invalid_data_uri")
    params = [item.strip() for item in header.split(";")]
    is_base64 = params[-1].lower() == "base64"
    # Checked before decoding: base64 grows data by 4/3, so a huge URI is refused without work.
    if (len(payload) * 3 // 4 if is_base64 else len(payload) // 3) > max_bytes:
        raise too_large(max_bytes)
    data = _base64(payload) if is_base64 else urllib.parse.unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    return Fetched(data, params[0] if "/" in params[0] else "")


def _base64(payload: str) -> bytes:
    # Clients wrap lines, percent-encode or drop padding; the URL-safe alphabet is common too.
    text = urllib.parse.unquote(payload)
    text = "".join(text.split()).replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("A data: URI in the request is not valid base64.", param="messages",
                          code="invalid_data_uri") from None


# --- http(s) URLs ----------------------------------------------------------------------------

def fetch_url(session: requests.Session, url: str, limits: FetchLimits) -> Fetched:
    """GET ``url``, following at most ``limits.max_redirects`` redirects; any failure is a 400."""
    deadline = time.monotonic() + limits.timeout * WHOLE_DOWNLOAD
    current = url
    for _ in range(limits.max_redirects + 1):
        response = open_client_url(session, current, limits)
        if response.status_code not in REDIRECTS:
            return _read(response, current, limits, deadline)
        location = response.headers.get("Location")
        response.close()
        if not location:
            raise unfetchable(url, f"HTTP {response.status_code} without a Location")
        try:
            current = urllib.parse.urljoin(current, location)
        except ValueError:
            raise unfetchable(url, "a redirect pointed to a malformed URL") from None
    raise unfetchable(url, f"more than {limits.max_redirects} redirects")


def open_client_url(session: requests.Session, url: str, limits: FetchLimits) -> requests.Response:
    """Open one client-supplied URL (never following redirects itself): the SSRF guard's place."""
    try:
        scheme = urllib.parse.urlsplit(url).scheme
    except ValueError:  # e.g. "http://[::1": an unbalanced IPv6 bracket
        raise unfetchable(url, "the URL is malformed") from None
    if scheme not in ("http", "https"):
        raise bad_request(f"Refused to fetch {_shown(url)}: only http and https URLs can be fetched.",
                          param="messages", code="url_not_allowed")
    try:
        return session.get(url, stream=True, allow_redirects=False, timeout=(limits.timeout, limits.timeout),
                           headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
    except requests.Timeout:
        raise unfetchable(url, "the server did not answer in time") from None
    except (requests.RequestException, OSError) as exc:
        if is_refused(exc):
            raise bad_request(f"Refused to fetch {_shown(url)}: it points to a private or local address.",
                              param="messages", code="url_not_allowed") from None
        raise unfetchable(url, exc.__class__.__name__) from None


def _read(response: requests.Response, url: str, limits: FetchLimits, deadline: float) -> Fetched:
    with response:
        if response.status_code != 200:
            raise unfetchable(url, f"HTTP {response.status_code}")
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limits.max_bytes:
            raise too_large(limits.max_bytes)
        data = _read_body(response, url, limits.max_bytes, deadline)
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    return Fetched(data, response.headers.get("Content-Type", ""), name or None)


def _read_body(response: requests.Response, url: str, max_bytes: int, deadline: float) -> bytes:
    """The body, stopping as soon as it passes the cap or the whole-download deadline."""
    try:
        return read_bounded(response.iter_content(CHUNK), max_bytes, deadline, lambda: too_large(max_bytes),
                            lambda: unfetchable(url, "the download took too long"))
    except (requests.RequestException, OSError) as exc:
        raise unfetchable(url, f"the download failed ({exc.__class__.__name__})") from None
