"""Notice a client that went away while its stream is silent.

A WSGI app only learns of a closed connection when a write fails, and a silent stream writes
nothing between keep-alives. Peeking at the client socket (gunicorn puts it in the environ) tells us
within a tick, so the upstream request can be closed at once instead of read to the end.
"""
from __future__ import annotations

import select
import socket
from typing import Callable, Mapping


def client_gone_probe(environ: Mapping) -> Callable[[], bool]:
    sock = environ.get("gunicorn.socket") or environ.get("gunicorn.sock")
    if sock is None:
        return lambda: False

    def gone() -> bool:
        try:
            # poll, not select: select() fails on descriptors above 1024, common with 1000 streams.
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            if not poller.poll(0):
                return False
            # Readable with nothing to read is EOF: the client closed its side.
            return sock.recv(1, socket.MSG_PEEK) == b""
        except ValueError:
            return False  # TLS sockets refuse MSG_PEEK: rely on failed writes instead
        except OSError:
            return True

    return gone
