"""media.py's pure helpers: file names from rscd, sanitising, image types from bytes, atomic writes."""
from __future__ import annotations

import pytest

from backend_to_api.media import (
    FILE_NAME, DownloadFailed, _attachment_name, _image_extension, safe_file_name, write_atomically,
)


def test_attachment_name_comes_from_rscd():
    url = "https://files.example/x?se=1&rscd=attachment%3B%20filename%3Dreport%20v2.csv&sig=abc"
    assert _attachment_name(url) == "report v2.csv"
    assert _attachment_name('https://f/x?rscd=attachment%3B%20filename%3D%22q.txt%22') == "q.txt"
    assert _attachment_name("https://f/x") == ""


@pytest.mark.parametrize("raw, safe", [
    ("report v2.csv", "report_v2.csv"), ("../../etc/passwd", "passwd"), ("/mnt/data/a.csv", "a.csv"),
    ("..\\..\\win.ini", "win.ini"), (".hidden", "hidden"), ("数据.xlsx", "file.xlsx"), ("a" * 300 + ".csv", "a" * 96 + ".csv"), ("", "file"), ("..", "file"),
])
def test_safe_file_name_is_one_harmless_component(raw, safe):
    assert safe_file_name(raw) == safe
    assert FILE_NAME.fullmatch("0" * 32 + "_" + safe_file_name(raw))


def test_image_type_comes_from_the_bytes():
    assert _image_extension(b"\x89PNG\r\n\x1a\n....") == "png"
    assert _image_extension(b"\xff\xd8\xff\xe0") == "jpg"
    assert _image_extension(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    with pytest.raises(DownloadFailed):
        _image_extension(b"<html>not an image</html>")


def test_write_atomically_leaves_no_partial_file(tmp_path):
    write_atomically(str(tmp_path / "d"), "a.bin", b"123")
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["a.bin"]
    assert (tmp_path / "d" / "a.bin").read_bytes() == b"123"


def test_a_download_that_trickles_past_its_deadline_fails():
    import time

    from backend_to_api.bounded_read import read_bounded

    def trickle():
        for _ in range(5):
            time.sleep(0.05)
            yield b"x"

    def bounded(pieces, max_bytes, seconds):
        return read_bounded(pieces, max_bytes, time.monotonic() + seconds,
                            lambda: DownloadFailed("too large"), lambda: DownloadFailed("too slow"))

    with pytest.raises(DownloadFailed, match="too slow"):
        bounded(trickle(), 100, 0.1)
    with pytest.raises(DownloadFailed, match="too large"):
        bounded(iter([b"ab", b"cd"]), 3, 5)
    assert bounded(iter([b"ab", b"c"]), 100, 5) == b"abc"
