"""CPU of the conversation call's HTTP/1.1 in our own code: one exchange and one upstream read.

    python bench/http1_micro.py [--exchanges 3000] [--reads 20000] [--gevent]

Prints this process's CPU (the upstream is another process, so its CPU is not counted):
- ``exchange``: ConnectionPool.exchange on a kept-alive connection (request with the headers a
  chat sends, head read) plus a one-event chunked body read to its end and the connection given back;
- ``read``: one UpstreamBody.read that gets one SSE event in one HTTP chunk (what most upstream
  reads of a streamed reply are), the chunk written to the other end of a socket pair just before;
- ``request``: building the request alone (what h11's header validation costs).
``--gevent`` monkey-patches (once the upstream process runs), as the workers run. Take the
minimum of a few runs.
"""
from __future__ import annotations

import argparse
import multiprocessing
import socket
import sys
import time
from pathlib import Path

EVENT = b'data: {"message": {"id": "m", "content": {"parts": ["Hello there, this is a token"]}}, "v": 1}\n\n'
HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: keep-alive\r\nDate: Fri, 04 Dec 2026 20:00:00 GMT\r\nServer: emulator\r\n\r\n")
HEADERS = {"Authorization": "Bearer " + "eyJhbGciOiJSUzI1NiJ9." + "x" * 900 + ".sig",
           "User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
                         "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
           "Chatgpt-Account-Id": "1b2c3d4e-0000-4000-8000-123456789abc",
           "Accept": "text/event-stream", "Accept-Encoding": "gzip, deflate",
           "Content-Type": "application/json", "Connection": "keep-alive"}
PAYLOAD = b'{"action": "next", "messages": []}' * 20


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def serve(answers: int, port_out) -> None:
    """In a process of its own (its CPU is not ours): HEAD and a one-event chunked body to each request."""
    from tests.raw_http import RawServer, send

    server = RawServer([send(HEAD + chunk(EVENT) + b"0\r\n\r\n")] * answers)
    port_out.send(server.port)
    time.sleep(3600)


def start_server(answers: int):
    """The upstream process and its port, started before gevent patches anything."""
    port_in, port_out = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(answers, port_out), daemon=True)
    server.start()
    return server, port_in.recv()


def exchanges(count: int, port: int) -> float:
    from backend_to_api.upstream.body import UpstreamBody
    from backend_to_api.upstream.http1 import ConnectionPool
    from backend_to_api.upstream.steps import ResumableCall

    pool = ConnectionPool(f"http://127.0.0.1:{port}", 2.0, None, max_idle=4)

    def one() -> None:
        exchange = ResumableCall(lambda deadline: pool.exchange(
            "POST", "/backend-api/conversation", HEADERS, PAYLOAD, 5.0, deadline)).wait(5.0)
        body = UpstreamBody.from_exchange(exchange, pool)
        while body.read(5.0):
            pass
        body.close(settle=True)

    for _ in range(50):
        one()
    start = time.process_time()
    for _ in range(count):
        one()
    spent = time.process_time() - start
    assert pool.idle_count() == 1, "the connection was not kept"
    return spent / count


def reads(count: int) -> float:
    import h11
    from backend_to_api.upstream.body import UpstreamBody
    from backend_to_api.upstream.http1 import Connection

    ours, theirs = socket.socketpair()
    connection = Connection(ours, 4.0)
    connection.protocol.send(h11.Request(method="POST", target="/", headers=[("Host", "x")]))
    connection.protocol.send(h11.EndOfMessage())
    connection.protocol.receive_data(HEAD)
    connection.protocol.next_event()
    body = UpstreamBody(200, {}, connection, None)
    piece = chunk(EVENT)
    for _ in range(200):
        theirs.sendall(piece)
        assert body.read(1.0) == EVENT
    start = time.process_time()
    for _ in range(count):
        theirs.sendall(piece)
        body.read(1.0)
    spent = time.process_time() - start
    # the send on the other end and the recv itself are not framing: take them out
    start = time.process_time()
    for _ in range(count):
        theirs.sendall(piece)
        ours.recv(65536)
    return (spent - (time.process_time() - start)) / count, spent / count


def requests(count: int) -> float:
    from backend_to_api.upstream.http1 import ConnectionPool

    pool = ConnectionPool("http://127.0.0.1:9", 2.0, None, max_idle=4)
    start = time.process_time()
    for _ in range(count):
        pool._request("POST", "/backend-api/conversation", HEADERS, len(PAYLOAD))
    return (time.process_time() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=3000)
    parser.add_argument("--reads", type=int, default=20000)
    parser.add_argument("--gevent", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    multiprocessing.set_start_method("fork")
    server, port = start_server(args.exchanges + 50)
    if args.gevent:
        from gevent import monkey
        monkey.patch_all()
    print(f"request   {requests(args.reads) * 1e6:7.1f} us")
    print(f"exchange  {exchanges(args.exchanges, port) * 1e6:7.1f} us (request, head, one-event body, give back)")
    server.kill()
    framing, whole = reads(args.reads)
    print(f"read      {framing * 1e6:7.2f} us (one chunk; {whole * 1e6:.2f} us with recv and the "
          f"other end's send)")


if __name__ == "__main__":
    main()
