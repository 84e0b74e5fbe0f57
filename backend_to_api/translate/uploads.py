"""``image_url`` parts -> files uploaded to the upstream, each distinct file once per account.

``InputFiles`` (one per worker) holds the limits, the uploader and the store; ``for_account`` gives
the per-request ``AccountFiles`` bound to one access token, which turns each ImagePart into an
``InputFile`` (the upstream file id plus what the conversation payload says about it).

Reuse: the store maps (account, sha256 of the bytes) -> file id, and a cached id is confirmed with
the upstream before reuse. The account is part of the key: the original shared one cache across
every caller, handing one account's file ids to another (bug S9), which the upstream refuses.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import mimetypes
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..auth.jwt import jwt_payload
from ..errors import UpstreamError
from ..redact import fingerprint
from ..settings import Settings
from ..upstream.client import UpstreamClient
from ..upstream.files import FileUploader, UploadRequest
from .chat_request import ImagePart
from ..upstream.guarded_fetch import GuardedFetcher, client_url_fetcher
from .fetch import FetchLimits, Fetched, decode_data_uri, fetch_url
from .filetypes import FileType, classify

log = logging.getLogger(__name__)

CACHE_TTL = 30 * 86400.0    # upstream files outlive this; a stale id only costs one re-upload
BYTES_PER_TOKEN = 4         # a rough count for a text document's fileTokenSize
AUTH_CLAIM = "https://api.openai.com/auth"


@dataclass(frozen=True)
class InputFile:
    file_id: str
    name: str
    kind: FileType
    size: int

    def asset_part(self) -> Dict[str, Any]:
        """The image's place among the message parts (multimodal_text)."""
        return {"content_type": "image_asset_pointer", "asset_pointer": f"file-service://{self.file_id}",
                "size_bytes": self.size, "width": self.kind.width, "height": self.kind.height}

    def attachment(self) -> Dict[str, Any]:
        entry: Dict[str, Any] = {"name": self.name, "id": self.file_id, "mimeType": self.kind.mime,
                                 "size": self.size}
        if self.kind.is_image:
            entry.update(width=self.kind.width, height=self.kind.height)
        elif self.kind.is_text:
            # An estimate of what the document costs the model; binary documents (pdf, docx) have
            # no cheap honest count, so they carry none (the original sent len(file_name)).
            entry["fileTokenSize"] = max(1, -(-self.size // BYTES_PER_TOKEN))
        return entry


class InputFiles:
    """Per worker: everything needed to turn client files into upstream file ids."""

    def __init__(self, settings: Settings, upstream: UpstreamClient, upstream_urls: GuardedFetcher,
                 store: Any) -> None:
        self.limits = FetchLimits(settings.input_file_max_bytes, settings.input_file_fetch_timeout,
                                  settings.input_file_max_redirects)
        self.upstream = upstream
        self.uploader = FileUploader(upstream, upstream_urls)
        self.store = store
        # Client URLs: only checked addresses are connected to (SSRF guard), never the upstream's.
        self.client_urls = client_url_fetcher(settings)

    def for_account(self, access_token: str, account_id: Optional[str], key: str) -> "AccountFiles":
        """``key`` (the client's token) names the account only when the access token does not."""
        return AccountFiles(self, access_token, account_id, key)

    def load(self, part: ImagePart) -> Fetched:
        if part.url.startswith("data:"):
            return decode_data_uri(part.url, self.limits.max_bytes)
        return fetch_url(self.client_urls, part.url, self.limits)


class AccountFiles:
    """Per request and account: resolves ImageParts, uploading each distinct file at most once."""

    def __init__(self, files: InputFiles, access_token: str, account_id: Optional[str], key: str) -> None:
        self.files = files
        self.access_token = access_token
        self.account_id = account_id
        self.key = key

    @functools.cached_property
    def account(self) -> str:
        # Only requests with files need it; the others skip decoding the token and hashing.
        return account_fingerprint(self.access_token, self.account_id, self.key)

    def resolve(self, part: ImagePart) -> InputFile:
        return self.resolve_fetched(self.files.load(part))

    def resolve_fetched(self, fetched: Fetched) -> InputFile:
        """Bytes the caller already holds (the images API's multipart uploads), uploaded the same way."""
        kind = classify(fetched.data, fetched.declared_mime)
        digest = hashlib.sha256(fetched.data).hexdigest()
        file_id = self._cached_id(digest) or self._upload(fetched.data, digest, kind)
        return InputFile(file_id, _file_name(fetched.name, digest, kind), kind, len(fetched.data))

    def _cached_id(self, digest: str) -> Optional[str]:
        cached = self.files.store.get_json(self._key(digest))
        file_id = cached.get("file_id") if isinstance(cached, dict) else None
        if not isinstance(file_id, str):
            return None
        try:
            if self.files.uploader.confirm(file_id, self.access_token, self.account_id):
                return file_id
        except UpstreamError as exc:
            log.info("could not confirm cached file %s (%s); uploading again", file_id, exc.message)
        return None

    def _upload(self, data: bytes, digest: str, kind: FileType) -> str:
        use_case = "multimodal" if kind.is_image else "my_files"
        item = UploadRequest(data, f"{digest[:32]}{kind.extension}", kind.mime, use_case)
        file_id = self.files.uploader.upload(item, self.access_token, self.account_id)
        self.files.store.set_json(self._key(digest), {"file_id": file_id, "mime": kind.mime}, ttl=CACHE_TTL)
        log.info("uploaded %s (%s, %d bytes) as %s", item.file_name, kind.mime, len(data), file_id)
        return file_id

    def _key(self, digest: str) -> str:
        return f"file:{self.account}:{digest}"  # the store adds its own namespace


def account_fingerprint(access_token: str, account_id: Optional[str], key: str) -> str:
    """A stable name for the upstream account (user + workspace) behind a token, never the token."""
    claims = (jwt_payload(access_token) or {}).get(AUTH_CLAIM)
    user = claims.get("user_id") if isinstance(claims, dict) else None
    workspace = account_id or (claims.get("chatgpt_account_id") if isinstance(claims, dict) else None)
    return fingerprint(f"user:{user}|{workspace or ''}" if user else f"key:{key}|{workspace or ''}")


def _file_name(fetched_name: Optional[str], digest: str, kind: FileType) -> str:
    """The URL's own file name when it matches the type (the model sees it); else hash + extension."""
    if fetched_name and len(fetched_name) <= 200:
        guessed = mimetypes.guess_type(fetched_name)[0]
        if guessed == kind.mime or fetched_name.lower().endswith(kind.extension):
            return fetched_name
    return f"{digest[:16]}{kind.extension}"
