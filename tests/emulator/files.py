"""File upload (three calls, spec/backend-api.md "Files") and test assets for the proxy to fetch.

- `POST /backend-api/files {file_name, file_size, use_case}` -> `{status, file_id, upload_url}`;
  the upload URL is this emulator's `/_emulator/upload/<file_id>` (a blob store: no auth; on
  `link_base` when configured).
- `PUT /_emulator/upload/<file_id>` with the bytes -> 201; the length, Content-Type, x-ms-blob-type
  and whether an Authorization header came are kept in the file's record (`GET /_emulator/files`).
- `POST /backend-api/files/<file_id>/uploaded {}` -> `{status: success, download_url}` once the
  bytes arrived; 404 for an id never created (or created before a reset).
- `GET /_emulator/asset/<name>`: files to fetch by URL (see ASSETS); `GET /_emulator/redirect/<n>/
  <name>` redirects n times before serving the asset.
"""
from __future__ import annotations

import io
import uuid

from flask import Blueprint, Response, current_app, jsonify, redirect, request, url_for
from PIL import Image

from .downloads import link
from .state import EmulatorState

files_bp = Blueprint("files", __name__)

USE_CASES = ("multimodal", "my_files", "ace_upload")
PNG_SIZE = (64, 48)


def _state() -> EmulatorState:
    return current_app.extensions["emulator"]


def _fails(step: str) -> bool:
    return _state().config.get("fail_upload") == step


@files_bp.post("/backend-api/files")
def create_file():
    body = request.get_json(silent=True, force=True)
    problem = _create_problem(body)
    if problem:
        return jsonify(detail=problem), 422
    if _fails("create"):
        return jsonify(detail="Emulated file service failure"), 500
    file_id = f"file-{uuid.uuid4().hex[:24]}"
    _state().new_file({"file_id": file_id, **{k: body[k] for k in ("file_name", "file_size", "use_case")},
                       "received_bytes": None, "put_headers": None, "confirmed": 0})
    upload_url = link("files.upload_blob", file_id=file_id)
    return jsonify(status="success", file_id=file_id, upload_url=upload_url)


def _create_problem(body: object) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("file_name"), str) or not body["file_name"]:
        return "file_name must be a non-empty string"
    if not isinstance(body.get("file_size"), int) or body["file_size"] < 0:
        return "file_size must be a non-negative integer"
    if body.get("use_case") not in USE_CASES:
        return f"use_case must be one of {', '.join(USE_CASES)}"
    return None


@files_bp.put("/_emulator/upload/<file_id>")
def upload_blob(file_id: str):
    data = request.get_data()
    headers = {name: request.headers.get(name) for name in ("Content-Type", "x-ms-blob-type", "Authorization")}
    record = _state().update_file(file_id, received_bytes=len(data), put_headers=headers)
    if record is None:
        return Response("BlobNotFound", status=404)
    if _fails("put"):
        return Response("AuthenticationFailed", status=403)
    if headers["x-ms-blob-type"] != "BlockBlob":
        return Response("MissingRequiredHeader x-ms-blob-type", status=400)
    return Response(status=201)


@files_bp.post("/backend-api/files/<file_id>/uploaded")
def file_uploaded(file_id: str):
    record = next((f for f in _state().files() if f["file_id"] == file_id), None)
    if record is None or record["received_bytes"] is None:
        return jsonify(detail="File not found"), 404
    if _fails("uploaded"):
        return jsonify(detail="Emulated file service failure"), 500
    _state().update_file(file_id, confirmed=record["confirmed"] + 1)
    return jsonify(status="success", download_url=url_for("files.upload_blob", file_id=file_id, _external=True))


@files_bp.get("/_emulator/files")
def files_seen():
    return jsonify(_state().files())


# --- assets to fetch by URL ------------------------------------------------------------------

def _png(color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", PNG_SIZE, color).save(buffer, "PNG")
    return buffer.getvalue()


def _asset(name: str) -> tuple[bytes, str] | None:
    """Bytes and Content-Type of an asset; `blob.bin?size=N` is N bytes of zeros."""
    if name == "image.png":
        return _png(), "image/png"
    if name == "mislabelled.png":  # a PNG sent as octet-stream: the bytes tell the truth
        return _png("blue"), "application/octet-stream"
    if name == "paper.pdf":
        return b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n", "application/pdf"
    if name == "notes.txt":
        return "plain notes, 中文\n".encode(), "text/plain; charset=utf-8"
    if name == "blob.bin":
        return bytes(request.args.get("size", 1024, type=int)), "application/octet-stream"
    return None


@files_bp.get("/_emulator/asset/<name>")
def asset(name: str):
    found = _asset(name)
    if found is None:
        return jsonify(detail="no such asset"), 404
    data, content_type = found
    return Response(data, status=200, content_type=content_type)


@files_bp.get("/_emulator/redirect_to")
def redirect_anywhere():
    """A redirect to any URL: lets tests check that the proxy re-checks every redirect target."""
    return redirect(request.args["url"], code=302)


@files_bp.get("/_emulator/redirect/<int:hops>/<name>")
def redirect_to_asset(hops: int, name: str):
    if hops <= 1:
        return redirect(url_for("files.asset", name=name, **request.args), code=302)
    return redirect(url_for("files.redirect_to_asset", hops=hops - 1, name=name, **request.args), code=302)
