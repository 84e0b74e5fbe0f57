"""Socket operations as resumable steps (``steps.py``): connect, TLS handshake and recv, each
yielding whenever its caller's slice of time ends, each with its own overall timeout.

Waiting uses ``select.poll``: the kernel's under gthread workers, gevent's cooperative one under
gevent (monkey-patched), with no limit on descriptor numbers in either.
"""
from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import time
from typing import Optional

from .steps import Deadline, Steps

READ_SIZE = 64 * 1024
_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY)


def receive(sock: socket.socket, deadline: Deadline, silence: float) -> Steps[bytes]:
    """One ``recv``, yielding whenever the deadline passes first. TimeoutError once the socket has
    been silent for ``silence`` seconds since this call began, however many resumes that spans."""
    silent_until = time.monotonic() + silence
    while True:
        wait = min(deadline.at, silent_until) - time.monotonic()
        if wait > 0:
            sock.settimeout(wait)
            try:
                return sock.recv(READ_SIZE)
            except (socket.timeout, BlockingIOError, ssl.SSLWantReadError):
                pass  # nothing in this slice (a TLS record may also be only half here)
        if time.monotonic() >= silent_until:
            raise TimeoutError(f"no answer within {silence:g} s")
        if deadline.remaining() <= 0:
            yield


def connect(host: str, port: int, timeout: float, deadline: Deadline) -> Steps[socket.socket]:
    """A connected TCP socket (non-blocking), trying each address of ``host`` in turn as
    socket.create_connection does, each for up to ``timeout`` seconds. The name lookup itself does
    not yield (c-ares under gevent; the system's resolver, usually cached, under threads)."""
    last: Optional[OSError] = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            yield from _connect_one(sock, address, timeout, deadline)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
        except BaseException:  # GeneratorExit (abandoned) included
            sock.close()
            raise
    raise last if last is not None else OSError(f"no address found for {host}")


def _connect_one(sock: socket.socket, address: tuple, timeout: float, deadline: Deadline) -> Steps[None]:
    sock.setblocking(False)
    code = sock.connect_ex(address)
    if code in _IN_PROGRESS:
        yield from _ready(sock, select.POLLOUT, time.monotonic() + timeout, deadline)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))


def handshake(tls: ssl.SSLContext, sock: socket.socket, host: str, timeout: float,
              deadline: Deadline) -> Steps[ssl.SSLSocket]:
    """``sock`` wrapped in TLS for ``host``, the handshake done within ``timeout`` seconds."""
    wrapped = tls.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    give_up_at = time.monotonic() + timeout
    try:
        while True:
            try:
                wrapped.do_handshake()
                return wrapped
            except ssl.SSLWantReadError:
                yield from _ready(wrapped, select.POLLIN, give_up_at, deadline)
            except ssl.SSLWantWriteError:
                yield from _ready(wrapped, select.POLLOUT, give_up_at, deadline)
    except BaseException:  # the wrapped socket owns the descriptor now
        wrapped.close()
        raise


def _ready(sock: socket.socket, events: int, give_up_at: float, deadline: Deadline) -> Steps[None]:
    """Until ``sock`` is ready for ``events``; TimeoutError at ``give_up_at``."""
    poller = select.poll()
    poller.register(sock, events)
    while True:
        wait = min(deadline.at, give_up_at) - time.monotonic()
        if wait > 0 and poller.poll(wait * 1000):
            return
        if time.monotonic() >= give_up_at:
            raise TimeoutError("timed out")
        if deadline.remaining() <= 0:
            yield
