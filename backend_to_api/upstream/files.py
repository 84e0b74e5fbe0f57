"""The backend-api file upload, three calls (spec/backend-api.md, Files):

1. ``POST /backend-api/files {file_name, file_size, use_case}`` -> ``{file_id, upload_url}``;
2. ``PUT upload_url`` with the bytes (blob storage: ``x-ms-blob-type: BlockBlob``, no Authorization);
3. ``POST /backend-api/files/<file_id>/uploaded {}`` -> ``{"status": "success"}``.

Step 3 alone also tells whether a file id from an earlier upload still works for a token.
A 401 or 429 keeps its meaning (the caller refreshes the token once on 401); any other failure is a
502 ``upload_failed``: the client's request was fine, the upstream could not take the file.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional

import requests
import urllib3

from ..errors import UpstreamError
from .client import USER_AGENT, UpstreamClient
from .errors import map_upstream_status, short_error_body, wrap_transport_errors
from .guarded_fetch import FetchFailed, GuardedFetcher, RefusedAddress
from .path_segments import segment

log = logging.getLogger(__name__)

BLOB_CREATED = 201


@dataclass(frozen=True)
class UploadRequest:
    data: bytes
    file_name: str
    mime: str
    use_case: str  # multimodal | my_files | ace_upload


class FileUploader:
    def __init__(self, client: UpstreamClient, upstream_urls: GuardedFetcher) -> None:
        self.client = client
        self.upstream_urls = upstream_urls  # the upload_url is the upstream's word: checked like any URL

    def upload(self, item: UploadRequest, access_token: str, account_id: Optional[str]) -> str:
        """Upload ``item``; returns its file id, or raises UpstreamError."""
        created = self._create(item, access_token, account_id)
        self._put_blob(created["upload_url"], item)
        if not self.confirm(created["file_id"], access_token, account_id, strict=True):
            raise upload_failed("the upstream did not confirm the upload")
        return created["file_id"]

    def confirm(self, file_id: str, access_token: str, account_id: Optional[str], strict: bool = False) -> bool:
        """Step 3: True when the upstream says the file is there. ``strict``: failures raise."""
        try:
            path = f"/backend-api/files/{segment(file_id)}/uploaded"
        except ValueError:  # a cached or upstream id that is not an id: never sent
            if strict:
                raise upload_failed("the upstream's file id is malformed") from None
            return False
        response = self._post_json(path, {}, access_token, account_id, "confirm upload")
        if response.status_code != 200:
            if strict:
                raise _failure(response)
            response.close()
            return False
        return _json(response).get("status") == "success"

    def _create(self, item: UploadRequest, access_token: str, account_id: Optional[str]) -> Dict[str, Any]:
        body = {"file_name": item.file_name, "file_size": len(item.data), "use_case": item.use_case}
        response = self._post_json("/backend-api/files", body, access_token, account_id, "create upload")
        if response.status_code != 200:
            raise _failure(response)
        created = _json(response)
        if not isinstance(created.get("file_id"), str) or not isinstance(created.get("upload_url"), str):
            raise upload_failed(f"no file_id/upload_url in the answer (status {created.get('status')!r})")
        return created

    def _put_blob(self, upload_url: str, item: UploadRequest) -> None:
        headers = {"Content-Type": item.mime, "x-ms-blob-type": "BlockBlob", "User-Agent": USER_AGENT}
        timeout = urllib3.Timeout(connect=self.client.timeout[0], read=self.client.timeout[1])
        try:
            with wrap_transport_errors("file upload"):
                with self.upstream_urls.open("PUT", upload_url, headers, timeout, body=item.data) as response:
                    status = response.status
        except (RefusedAddress, FetchFailed, ValueError) as exc:
            raise upload_failed(f"the upload_url was not used: {exc}") from None
        if status != BLOB_CREATED:
            raise upload_failed(f"the blob store answered HTTP {status}")

    def _post_json(self, path: str, body: dict, access_token: str, account_id: Optional[str],
                   what: str) -> requests.Response:
        # stream=True: on failure _failure reads the (capped) error body itself
        return self.client.post(f"{self.client.root}{path}", what, json=body,
                                headers=self.client.headers(access_token, account_id),
                                timeout=self.client.timeout, stream=True)


def upload_failed(detail: str) -> UpstreamError:
    return UpstreamError(502, f"Uploading a file to the upstream failed: {detail}.", code="upload_failed")


def _failure(response: requests.Response) -> UpstreamError:
    status = response.status_code
    error = map_upstream_status(status, short_error_body(response), response.headers)
    log.info("file upload: upstream answered %s: %s", status, error.message)
    if status in (401, 429):
        return error
    return UpstreamError(502, f"Uploading a file to the upstream failed: {error.message}", status,
                         code="upload_failed")


def _json(response: requests.Response) -> Dict[str, Any]:
    try:
        with wrap_transport_errors("reading the upload answer"):
            data = response.json()
    except ValueError:
        raise upload_failed("the answer was not JSON") from None
    finally:
        response.close()
    return data if isinstance(data, dict) else {}
