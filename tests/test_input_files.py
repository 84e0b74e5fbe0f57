"""The pure parts of file input: deciding a file's type, and decoding data: URIs."""
from __future__ import annotations

import base64
import io
import zipfile

import pytest
from PIL import Image

from backend_to_api.errors import ApiError
from backend_to_api.translate.fetch import decode_data_uri
from backend_to_api.translate.filetypes import DOCX, classify


def image(fmt: str, size=(5, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, fmt)
    return buffer.getvalue()


def docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


@pytest.mark.parametrize("fmt,mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"),
                                      ("WEBP", "image/webp")])
def test_images_are_known_by_their_bytes_whatever_was_declared(fmt, mime):
    kind = classify(image(fmt), "application/octet-stream")
    assert (kind.mime, kind.width, kind.height) == (mime, 5, 3)


@pytest.mark.parametrize("data,declared,expected", [
    (b"%PDF-1.7 ...", "", "application/pdf"),
    (docx(), "", DOCX),
    (b"print('hi')\n", "text/x-python", "text/x-script.python"),  # an alias of a listed type
    (b"# Title\n", "text/markdown; charset=utf-8", "text/markdown"),
    (b"not really a png", "image/png", "text/plain"),              # the bytes disagree
    (image("BMP"), "image/bmp", "text/plain"),                      # not in the seed README's list
    (b"\xff\xfe\x00binary", "application/zip", "text/plain"),
])
def test_documents_and_the_text_plain_fallback(data, declared, expected):
    kind = classify(data, declared)
    assert kind.mime == expected and not kind.is_image


@pytest.mark.parametrize("uri,data,mime", [
    ("data:image/png;base64," + base64.b64encode(b"\x89PNG abc").decode(), b"\x89PNG abc", "image/png"),
    ("data:text/plain;charset=utf-8,a%20b%E4%B8%AD", "a b中".encode(), "text/plain"),
    ("data:;base64,aGk", b"hi", ""),                                  # no padding, no mime
    ("data:application/pdf;base64,JVBER\n  i0x", b"%PDF-1", "application/pdf"),  # wrapped lines
    ("data:image/png;base64,-_8", base64.b64decode("+/8="), "image/png"),          # URL-safe alphabet
])
def test_data_uris_decode(uri, data, mime):
    fetched = decode_data_uri(uri, 1000)
    assert (fetched.data, fetched.declared_mime) == (data, mime)


@pytest.mark.parametrize("uri,status", [("data:image/png;base64,#!", 400), ("data:image/png", 400),
                                        ("data:;base64," + "A" * 2000, 413), ("data:," + "a" * 1001, 413)])
def test_bad_or_large_data_uris(uri, status):
    with pytest.raises(ApiError) as caught:
        decode_data_uri(uri, 1000)
    assert caught.value.status == status
