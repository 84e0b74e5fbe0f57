"""A real HTTP listener that records every TCP connection it accepts: the witness that a refused URL
was never contacted (a request log cannot say so when the refusal happens before any request).

It answers GET with a small PNG (so an allowed image download works end to end) and PUT with 201
(a blob store), on any path.
"""
from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "green").save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._answer(200, PNG, "image/png")

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(201, b"", "text/plain")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet
        pass


class ContactRecorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str) -> None:
        self.contacts = 0   # TCP connections accepted, whatever came (or not) on them
        self.paths: list[str] = []
        super().__init__((host, 0), _Handler)
        self.base = f"http://{host}:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def verify_request(self, request, client_address) -> bool:
        # socketserver's documented hook, called for every accepted connection
        self.contacts += 1
        return True

    def start(self) -> "ContactRecorder":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
