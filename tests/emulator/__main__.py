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
from gevent.pywsgi import WSGIServer  # noqa: E402

from tests.emulator.app import create_emulator_app  # noqa: E402


class EmulatorServer(WSGIServer):
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
    args = parser.parse_args(argv)
    _raise_open_file_limit()
    server = EmulatorServer((args.host, args.port), create_emulator_app(), backlog=4096,
                            log=sys.stderr if args.log else None)
    server.init_socket()
    host, port = server.socket.getsockname()[:2]
    print(f"emulator listening on http://{host}:{port}", flush=True)
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
