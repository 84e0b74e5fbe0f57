"""The gevent worker's chunk writer: one send, and a partial send finished, byte for byte."""
import socket
import threading

from backend_to_api.serving import gunicorn_options
from backend_to_api.settings import load_settings
from backend_to_api.stream_worker import _ChunkSender


def test_gevent_means_the_streaming_worker(monkeypatch):
    monkeypatch.setenv("WORKER_CLASS", "gevent")
    assert gunicorn_options(load_settings())["worker_class"] == "backend_to_api.stream_worker.StreamingGeventWorker"
    monkeypatch.setenv("WORKER_CLASS", "gthread")
    assert gunicorn_options(load_settings())["worker_class"] == "gthread"


def test_a_write_larger_than_the_socket_buffer_arrives_whole():
    writer, reader = socket.socketpair()
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    writer.settimeout(10)  # a timeout makes send() return what fit instead of blocking for all
    data = bytes(range(256)) * 8192  # 2 MiB: many partial sends
    received = bytearray()

    def read_to_eof() -> None:
        while chunk := reader.recv(65536):
            received.extend(chunk)

    thread = threading.Thread(target=read_to_eof)
    thread.start()
    sender = _ChunkSender(writer)
    sender.sendall(data)
    sender.sendall(b"tail")
    sender.shutdown(socket.SHUT_WR)  # everything but sendall passes through to the socket
    thread.join(10)
    writer.close()
    reader.close()
    assert bytes(received) == data + b"tail"
