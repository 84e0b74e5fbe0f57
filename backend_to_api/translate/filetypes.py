"""What kind of file a client sent: decided from the declared mime and the bytes themselves.

The declared type (a data: URI's mime, a server's Content-Type) is often wrong or generic, so magic
numbers win where they exist; Pillow must open an image (which also gives its size) before it goes
upstream as one. The upstream accepts the images and documents listed in the seed README; anything
else goes up as text/plain, as that README promises (the original sent it as ``ace_upload`` with an
empty Content-Type instead, spec/original-behaviour.md 7.4).
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Optional

from PIL import Image, UnidentifiedImageError

IMAGE_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp"}
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
# Binary documents: only believed when the bytes agree.
BINARY_DOCUMENTS = {"application/pdf": ".pdf", "application/msword": ".doc", DOCX: ".docx", PPTX: ".pptx"}
# Text documents: any bytes that decode as UTF-8 are believed to be what they claim.
TEXT_DOCUMENTS = {
    "text/x-php": ".php", "text/x-c": ".c", "text/html": ".html", "application/json": ".json",
    "text/javascript": ".js", "text/x-java": ".java", "text/x-tex": ".tex", "text/x-typescript": ".ts",
    "text/x-sh": ".sh", "text/x-csharp": ".cs", "text/x-c++": ".cpp", "application/x-latext": ".latex",
    "text/markdown": ".md", "text/plain": ".txt", "text/x-ruby": ".rb", "text/x-script.python": ".py",
}
PLAIN_TEXT = "text/plain"
# Common spellings of the listed types that clients and servers send.
ALIASES = {
    "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "text/x-python": "text/x-script.python",
    "application/x-python": "text/x-script.python", "application/javascript": "text/javascript",
    "application/x-pdf": "application/pdf", "text/x-markdown": "text/markdown",
}
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"), (b"%PDF-", "application/pdf"), (b"\xd0\xcf\x11\xe0", "application/msword"),
)
_PILLOW_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


@dataclass(frozen=True)
class FileType:
    mime: str
    extension: str
    width: Optional[int] = None   # images only
    height: Optional[int] = None

    @property
    def is_image(self) -> bool:
        return self.width is not None

    @property
    def is_text(self) -> bool:
        return self.mime in TEXT_DOCUMENTS


def classify(data: bytes, declared: str) -> FileType:
    """The type the upstream will be told; never fails (the fallback is text/plain)."""
    declared = normalize_mime(declared)
    sniffed = sniff(data)
    if sniffed in IMAGE_TYPES or (sniffed is None and declared in IMAGE_TYPES):
        image = _image_type(data)
        if image is not None:
            return image
    elif sniffed in BINARY_DOCUMENTS:
        return FileType(sniffed, BINARY_DOCUMENTS[sniffed])
    elif sniffed == "zip" and declared in (DOCX, PPTX):
        return FileType(declared, BINARY_DOCUMENTS[declared])
    if declared in TEXT_DOCUMENTS and _is_utf8(data):
        return FileType(declared, TEXT_DOCUMENTS[declared])
    return FileType(PLAIN_TEXT, TEXT_DOCUMENTS[PLAIN_TEXT])


def normalize_mime(value: Optional[str]) -> str:
    mime = (value or "").split(";", 1)[0].strip().lower()
    return ALIASES.get(mime, mime)


def sniff(data: bytes) -> Optional[str]:
    """The type the first bytes announce: an image, a PDF, an OLE (.doc) file, a zip, or None."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"PK\x03\x04"):
        return _office_type(data)
    return None


def _office_type(data: bytes) -> str:
    """docx and pptx are zips; their member names tell which (a plain zip stays "zip")."""
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, ValueError):
        return "zip"
    if "word/document.xml" in names:
        return DOCX
    if "ppt/presentation.xml" in names:
        return PPTX
    return "zip"


def _image_type(data: bytes) -> Optional[FileType]:
    """Width, height and format from Pillow; None when Pillow cannot read it as a listed format."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            mime = _PILLOW_FORMATS.get(image.format or "")
            width, height = image.size
            image.verify()  # catches truncated or corrupt data that the header alone hides
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    if mime is None:
        return None
    return FileType(mime, IMAGE_TYPES[mime], width, height)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
