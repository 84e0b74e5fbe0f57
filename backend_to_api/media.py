"""Tool output files (DALL-E and python images, sandbox files) -> URLs a user can open. Does I/O.

Upstream pointers (``file-service://``, ``sandbox:``) mean nothing outside ChatGPT and its download
URLs expire in about an hour (openai-compat.md item 28), so by default the bytes are saved under
``images/`` or ``files/`` with a name nobody can guess and served by ``api/media_files.py``. With
``use_oaiusercontent_url`` the upstream's URL is shown and nothing is saved.

Every failure is logged and answered with None: a reply must never break over a lost image.
"""
from __future__ import annotations

import logging
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import parse_qs, quote, unquote, urlsplit

import urllib3

from .bounded_read import read_bounded
from .errors import UpstreamError
from .upstream.client import USER_AGENT, UpstreamClient
from .upstream.errors import wrap_transport_errors
from .upstream.guarded_fetch import FetchFailed, GuardedFetcher, RefusedAddress
from .upstream.path_segments import segment

log = logging.getLogger(__name__)

# Names this service writes; api/media_files.py serves nothing else.
IMAGE_NAME = re.compile(r"[0-9a-f]{32}\.(?:png|jpg|gif|webp)")
FILE_NAME = re.compile(r"[0-9a-f]{32}_[A-Za-z0-9._-]{1,100}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"))
_CHUNK = 64 * 1024
_REDIRECTS = 5  # pre-signed blob links may bounce once or twice; each hop is checked


@dataclass(frozen=True)
class MediaConfig:
    images_dir: str
    files_dir: str
    public_url: str  # backend_container_url, or this request's own root when that is unset
    use_upstream_urls: bool = False
    max_bytes: int = 32 * 1024 * 1024
    read_timeout: float = 60.0
    total_timeout: float = 120.0  # one download in all: a trickling server must not hold the stream


@dataclass(frozen=True)
class FetchedImage:
    url: str
    data: bytes


class DownloadFailed(Exception):
    """A pointer could not be turned into bytes (logged, then shown as a short note)."""


class MediaResolver:
    """Resolves the pointers of one reply with that reply's access token."""

    def __init__(self, upstream: UpstreamClient, upstream_urls: GuardedFetcher, config: MediaConfig,
                 access_token: str, account_id: Optional[str] = None) -> None:
        self.upstream = upstream
        self.upstream_urls = upstream_urls  # download links are the upstream's word: checked like any URL
        self.config = config
        self._access_token = access_token
        self._account_id = account_id

    def image_url(self, file_id: str, scheme: str = "file-service",
                  conversation_id: Optional[str] = None) -> Optional[str]:
        """The URL to show for an upstream image file id, or None when it cannot be had."""
        image = self.pointed_image(scheme, file_id, conversation_id, keep_bytes=False)
        return image.url if image is not None else None

    def pointed_image(self, scheme: str, file_id: str, conversation_id: Optional[str],
                      keep_bytes: bool = True) -> Optional["FetchedImage"]:
        """The image behind a pointer's scheme (``sediment`` or ``file-service``) and file id; a
        sediment image is asked of the conversation that made it. None when it cannot be had."""
        if scheme == "sediment":
            return self.sediment_image(conversation_id, file_id, keep_bytes)
        return self.image(file_id, keep_bytes)

    def image(self, file_id: str, keep_bytes: bool = True) -> Optional["FetchedImage"]:
        """The image behind an upstream file id: its URL to show and (unless linked upstream only
        and not asked for) its bytes. None when it cannot be had."""
        return self._image(lambda: f"/backend-api/files/{_id(file_id)}/download", file_id, keep_bytes)

    def sediment_image(self, conversation_id: Optional[str], file_id: str,
                       keep_bytes: bool = True) -> Optional["FetchedImage"]:
        """A ``sediment://`` image (the picture_v2 model's): its link is asked of the conversation
        that made it (spec backend-api-2026.md 3.7). None when it cannot be had."""
        return self._image(
            lambda: f"/backend-api/conversation/{_id(conversation_id)}/attachment/{_id(file_id)}/download",
            file_id, keep_bytes)

    def _image(self, link_path: Callable[[], str], file_id: str, keep_bytes: bool) -> Optional["FetchedImage"]:
        try:
            download_url = self._download_url(link_path())
            if self.config.use_upstream_urls:
                return FetchedImage(download_url, self._fetch(download_url) if keep_bytes else b"")
            data = self._fetch(download_url)
            name = f"{uuid.uuid4().hex}.{_image_extension(data)}"
            return FetchedImage(self._save(self.config.images_dir, "images", name, data), data)
        except (DownloadFailed, UpstreamError) as exc:
            log.warning("image %s could not be fetched: %s", file_id, exc)
            return None

    def sandbox_url(self, conversation_id: Optional[str], message_id: str, path: str) -> Optional[str]:
        """The URL to show for ``sandbox:<path>`` of a code-interpreter message, or None."""
        if not conversation_id:
            return None
        query = f"message_id={quote(message_id, safe='')}&sandbox_path={quote(path, safe='')}"
        try:
            download_url = self._download_url(
                f"/backend-api/conversation/{_id(conversation_id)}/interpreter/download?{query}")
            if self.config.use_upstream_urls:
                return download_url
            name = f"{uuid.uuid4().hex}_{safe_file_name(_attachment_name(download_url) or path)}"
            return self._save(self.config.files_dir, "files", name, self._fetch(download_url))
        except (DownloadFailed, UpstreamError) as exc:
            log.warning("sandbox file %s could not be fetched: %s", path, exc)
            return None

    def _download_url(self, path: str) -> str:
        response = self.upstream.get(path, "file download link", self._access_token, self._account_id)
        try:
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            body = None
        finally:
            response.close()
        url = body.get("download_url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DownloadFailed(f"no download_url (status {response.status_code})")
        return url

    def _fetch(self, url: str) -> bytes:
        # The download URL is pre-signed: our Authorization header must not travel with it.
        timeout = urllib3.Timeout(connect=self.upstream.timeout[0], read=self.config.read_timeout)
        headers = {"User-Agent": USER_AGENT}
        try:
            with wrap_transport_errors("file download"):
                with self.upstream_urls.get_following(url, headers, timeout, _REDIRECTS) as (response, _):
                    if response.status != 200:
                        raise DownloadFailed(f"download answered {response.status}")
                    deadline = time.monotonic() + self.config.total_timeout
                    return read_bounded(response.stream(_CHUNK), self.config.max_bytes, deadline,
                                        lambda: DownloadFailed(f"larger than {self.config.max_bytes} bytes"),
                                        lambda: DownloadFailed("the download took too long"))
        except (RefusedAddress, FetchFailed, ValueError) as exc:
            raise DownloadFailed(f"not fetched: {exc}") from None

    def _save(self, directory: str, route: str, name: str, data: bytes) -> str:
        try:
            write_atomically(directory, name, data)
        except OSError as exc:
            raise DownloadFailed(f"could not save {name}: {exc}") from exc
        return f"{self.config.public_url.rstrip('/')}/{route}/{name}"


def _id(value: Optional[str]) -> str:
    try:
        return segment(value)
    except ValueError as exc:
        raise DownloadFailed(str(exc)) from None


def write_atomically(directory: str, name: str, data: bytes) -> None:
    """Readers (the /images route, another worker) never see a half-written file."""
    os.makedirs(directory, exist_ok=True)
    handle, temp_path = tempfile.mkstemp(dir=directory, prefix=".partial-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temp_path, os.path.join(directory, name))
    except BaseException:
        if os.path.exists(temp_path):
            os.unlink(temp_path)
        raise


def _image_extension(data: bytes) -> str:
    """From the bytes, not the URL or a header (DALL-E serves webp under varying names)."""
    for magic, extension in _MAGIC:
        if data.startswith(magic):
            return extension
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise DownloadFailed("not a png, jpeg, gif or webp image")


def _attachment_name(download_url: str) -> str:
    """The real file name, from the ``rscd=attachment; filename=...`` query parameter."""
    rscd = parse_qs(urlsplit(download_url).query).get("rscd", [""])[0]
    return unquote(rscd.rpartition("filename=")[2]).strip().strip('"')


def safe_file_name(name: str) -> str:
    """A name that is one harmless path component: no separators, no leading dots, ASCII only."""
    stem, extension = os.path.splitext(os.path.basename(name.replace("\\", "/")))
    stem = _UNSAFE.sub("_", stem).lstrip("._") or "file"  # e.g. a name written only in Chinese
    extension = _UNSAFE.sub("_", extension)[:16]
    return stem[:100 - len(extension)] + extension
