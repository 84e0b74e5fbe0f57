"""gunicorn's gevent worker with a cheaper write for streamed chunks (``worker_class: gevent``).

gunicorn writes every chunk of a streamed response with ``socket.sendall``; gevent's sendall asks
the kernel for the send buffer size and reads the clock on every call, which for one small SSE
chunk costs more than the send itself (~8% of the proxy's CPU with 1000 streams, bench/). One
``send`` takes such a chunk whole; ``sendall`` finishes the rare partial send. Nothing else about
the worker changes.
"""
from __future__ import annotations

from typing import Any

from gunicorn.workers.ggevent import GeventWorker


class _ChunkSender:
    """The client socket as gunicorn's response writer sees it; everything but sendall passes through."""

    __slots__ = ("_sock",)

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def sendall(self, data: bytes, flags: int = 0) -> None:
        sent = self._sock.send(data, flags)
        if sent < len(data):
            self._sock.sendall(memoryview(data)[sent:], flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class StreamingGeventWorker(GeventWorker):
    def handle_request(self, listener_name, req, sock, addr):  # noqa: ANN001 (gunicorn's signature)
        # Only the response side gets the wrapper: gunicorn's own checks (TLS, HTTP/2) saw the
        # real socket in handle().
        return super().handle_request(listener_name, req, _ChunkSender(sock), addr)
