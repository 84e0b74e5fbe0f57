"""Downloads of tool output (spec/backend-api.md "Files"): generated images and sandbox files.

- `GET /backend-api/files/<file_id>/download` -> `{status: success, download_url}` pointing at
  `/_emulator/blob/<file_id>`; an id starting with `file-missing` answers 404.
- `GET /backend-api/conversation/<cid>/interpreter/download?message_id=&sandbox_path=` ->
  `{download_url}` pointing at `/_emulator/blob/sandbox-<name>?rscd=attachment; filename=<name>`
  (the real name travels in `rscd`, as upstream does); a path containing `missing` answers 404.
  It answers only for a (conversation, message, path) that a reply of that conversation linked as
  `sandbox:` in that very message (404 otherwise), so a proxy sending the wrong ids fails.
- `GET /_emulator/blob/<name>`: deterministic bytes (no auth, like a pre-signed URL): a small PNG
  for `file-*`, a CSV for `sandbox-*`. Tests fetch it too and compare byte for byte.
- Config `link_base` (e.g. `http://127.0.0.2:PORT`) makes these links (and upload links) point at
  another address: does the proxy fetch what the upstream hands it?
"""
from __future__ import annotations

import hashlib
import io
import posixpath
from urllib.parse import quote

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from PIL import Image

downloads_bp = Blueprint("downloads", __name__)


def link(endpoint: str, **values: str) -> str:
    """An absolute link to one of our routes, on `link_base` when that is configured."""
    base = current_app.extensions["emulator"].config["link_base"]
    return base.rstrip("/") + url_for(endpoint, **values) if base else url_for(endpoint, **values, _external=True)


@downloads_bp.get("/backend-api/files/<file_id>/download")
def file_download(file_id: str):
    if file_id.startswith("file-missing"):
        return jsonify(detail="File not found"), 404
    return jsonify(status="success", download_url=link("downloads.blob", name=file_id),
                   metadata=None, file_name=f"{file_id}.png", creation_time="2024-05-01 00:00:00")


@downloads_bp.get("/backend-api/conversation/<conversation_id>/interpreter/download")
def interpreter_download(conversation_id: str):
    message_id, path = request.args.get("message_id"), request.args.get("sandbox_path")
    if not message_id or not path or not path.startswith("/mnt/data/"):
        return jsonify(detail="message_id and sandbox_path are required"), 422
    served = current_app.extensions["emulator"].served_sandbox_file(conversation_id, message_id, path)
    if "missing" in path or not served:
        return jsonify(detail="File not found"), 404
    name = posixpath.basename(path)
    blob = link("downloads.blob", name=f"sandbox-{name}")
    return jsonify(download_url=f"{blob}?rscd={quote(f'attachment; filename={name}', safe='')}")


@downloads_bp.get("/_emulator/blob/<name>")
def blob(name: str):
    if name.startswith(("file-", "file_")):  # file-service ids, and sediment's file_... ids
        return Response(blob_png(name), content_type="image/png")
    if name.startswith("sandbox-"):
        return Response(blob_csv(name), content_type="text/csv")
    return jsonify(detail="no such blob"), 404


def blob_png(name: str) -> bytes:
    """A 24x16 PNG whose colour depends on the name, so two images are never confused."""
    colour = tuple(hashlib.sha256(name.encode()).digest()[:3])
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(buffer, "PNG")
    return buffer.getvalue()


def blob_csv(name: str) -> bytes:
    return f"name,value\n{name},42\n中文,1\n".encode()
