"""GET /images/<name> and /files/<name>: the tool output this service saved (media.py), nothing else.

Only names the service itself generates are served (a strict pattern, so no traversal, no absolute
paths, no dotfiles), and only regular files that are not symlinks.
"""
from __future__ import annotations

import os
import re

from flask import Blueprint, Response, send_file

from ..errors import ApiError
from ..media import FILE_NAME, IMAGE_NAME
from . import services

media_files = Blueprint("media_files", __name__)


@media_files.get("/images/<name>")
def image(name: str) -> Response:
    return _serve(services().settings.images_dir, name, IMAGE_NAME, as_attachment=False)


@media_files.get("/files/<name>")
def file(name: str) -> Response:
    return _serve(services().settings.files_dir, name, FILE_NAME, as_attachment=True)


def _serve(directory: str, name: str, pattern: re.Pattern[str], as_attachment: bool) -> Response:
    if not pattern.fullmatch(name):
        raise _not_found()
    path = os.path.join(os.path.abspath(directory), name)
    if os.path.islink(path) or not os.path.isfile(path):
        raise _not_found()
    # Files are saved as <32 hex>_<original name>: the download keeps the original name.
    download_name = name.split("_", 1)[1] if as_attachment else None
    return send_file(path, as_attachment=as_attachment, download_name=download_name, max_age=86400,
                     conditional=True)


def _not_found() -> ApiError:
    return ApiError(404, "No such file.", "invalid_request_error", code="not_found")
