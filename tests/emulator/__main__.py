"""Serve the emulator: `python -m tests.emulator --host 127.0.0.1 --port N [--log]`.

gevent's pywsgi gives one greenlet per connection, so thousands of slow streams cost little.
`--port 0` picks a free port; the first line on stdout always says where it listens:
`emulator listening on http://HOST:PORT`.
"""
from gevent import monkey

monkey.patch_all()  # before anything else imports socket, threading or time

import argparse  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIHandler, WSGIServer  # noqa: E402

from tests.emulator.app import create_emulator_app  # noqa: E402


class EmulatorHandler(WSGIHandler):
    def _write(self, data: bytes) -> None:
        # The same bytes as pywsgi's own `_write` (one HTTP chunk per body item), in one formatting
        # step instead of four: it runs for every event of every stream.
        if data:
            self._sendall(b"%x\r\n%b\r\n" % (len(data), data) if self.response_use_chunked else data)

    def _sendall(self, data: bytes) -> None:
        # gevent's socket.sendall asks the kernel for the send buffer size and reads the clock on
        # every call, which costs more than the send itself for one small event. One send() takes
        # such a write whole; sendall finishes the rare partial one.
        try:
            sent = self.socket.send(data)
            if sent < len(data):
                self.socket.sendall(memoryview(data)[sent:])
        except socket.error as ex:  # as pywsgi's `_sendall` records it
            self.status = f"socket error: {ex}"
            if self.code > 0:
                self.code = -self.code
            raise
        self.response_length += len(data)


class EmulatorServer(WSGIServer):
    handler_class = EmulatorHandler

    def handle(self, sock, address):
        # SSE events are small writes; without NODELAY, Nagle's algorithm holds them back until
        # the client's delayed ACK (up to 40 ms each), which real upstreams do not do.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", action="store_true", help="log every request to stderr")
    parser.add_argument("--certfile", help="serve HTTPS with this certificate (e.g. tests/tls/cert.pem)")
    parser.add_argument("--keyfile", help="and this key (e.g. tests/tls/key.pem)")
    args = parser.parse_args(argv)
    _raise_open_file_limit()
    tls = {"certfile": args.certfile, "keyfile": args.keyfile} if args.certfile else {}
    server = EmulatorServer((args.host, args.port), create_emulator_app(), backlog=4096,
                            log=sys.stderr if args.log else None, **tls)
    server.init_socket()
    host, port = server.socket.getsockname()[:2]
    print(f"emulator listening on {'https' if tls else 'http'}://{host}:{port}", flush=True)
    _stop_on_signals(server)
    server.serve_forever()


def _stop_on_signals(server: WSGIServer) -> None:
    """SIGTERM and SIGINT stop the server within a second, even with streams hanging.

    Explicit handlers, because a process started in the background by a shell inherits an
    ignored SIGINT, and Python then never raises KeyboardInterrupt.
    """
    def stop() -> None:
        gevent.spawn(server.stop, timeout=1)  # the hub must not block: stop in a greenlet
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop)


def _raise_open_file_limit() -> None:
    """One socket per stream: 1000+ concurrent streams need more than the common 1024 files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # keep the limit we have; only very large loads need more


if __name__ == "__main__":
    main()
