"""The bytes behind an ``image_url`` part: a data: URI decoded, or an http(s) URL downloaded.

Every client URL, redirects included, is opened through ``upstream/guarded_fetch.py`` (the SSRF
guard of issue 5: only checked addresses are connected to, each redirect hop checked). Downloads are bounded in size, time and
redirects, because the original fetched anything with no limit at all (spec/original-behaviour.md 7.3).
"""
from __future__ import annotations

import base64
import binascii
import time
import urllib.parse
from dataclasses import dataclass
from typing import Optional

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

from ..bounded_read import read_bounded
from ..errors import ApiError, bad_request
from ..upstream.guarded_fetch import FetchFailed, GuardedFetcher, Opened, RefusedAddress

CHUNK = 64 * 1024
WHOLE_DOWNLOAD = 4  # a slow drip of bytes must not hold a request (and a worker greenlet) forever
HEADERS = {"User-Agent": "Mozilla/5.0 (compatible; backend-to-api file fetcher)", "Accept": "*/*"}


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

def fetch_url(fetcher: GuardedFetcher, url: str, limits: FetchLimits) -> Fetched:
    """GET ``url``, following at most ``limits.max_redirects`` redirects; any failure is a 400."""
    deadline = time.monotonic() + limits.timeout * WHOLE_DOWNLOAD
    timeout = urllib3.Timeout(connect=limits.timeout, read=limits.timeout)
    try:
        with fetcher.get_following(url, HEADERS, timeout, limits.max_redirects) as opened:
            return _read(opened, limits, deadline)
    except RefusedAddress as exc:
        raise bad_request(f"Refused to fetch {_shown(url)}: {exc}.", param="messages",
                          code="url_not_allowed") from None
    except FetchFailed as exc:
        raise unfetchable(url, str(exc)) from None
    except ValueError:  # e.g. "http://[::1": an unbalanced IPv6 bracket
        raise unfetchable(url, "the URL is malformed") from None
    except NewConnectionError:  # (a TimeoutError subclass in urllib3: caught first)
        raise unfetchable(url, "the connection failed") from None
    except TimeoutError:
        raise unfetchable(url, "the server did not answer in time") from None
    except (HTTPError, OSError) as exc:
        raise unfetchable(url, exc.__class__.__name__) from None


def _read(opened: Opened, limits: FetchLimits, deadline: float) -> Fetched:
    response, url = opened
    if response.status != 200:
        raise unfetchable(url, f"HTTP {response.status}")
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limits.max_bytes:
        raise too_large(limits.max_bytes)
    data = _read_body(response, url, limits.max_bytes, deadline)
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    return Fetched(data, response.headers.get("Content-Type", ""), name or None)


def _read_body(response: urllib3.BaseHTTPResponse, url: str, max_bytes: int, deadline: float) -> bytes:
    """The body, stopping as soon as it passes the cap or the whole-download deadline."""
    try:
        return read_bounded(response.stream(CHUNK), max_bytes, deadline, lambda: too_large(max_bytes),
                            lambda: unfetchable(url, "the download took too long"))
    except (HTTPError, OSError) as exc:
        raise unfetchable(url, f"the download failed ({exc.__class__.__name__})") from None
