"""A raw HTTP server for tests that must send exact bytes, broken framing included (threads and
sockets, nothing of ours), a chunked-body builder, and a reader of an UpstreamBody to its end."""
import socket
import threading
import time


def chunked(pieces, extension=b"", trailers=b"", upper=False):
    out = b""
    for piece in pieces:
        size = b"%x" % len(piece)
        out += (size.upper() if upper else size) + extension + b"\r\n" + piece + b"\r\n"
    return out + b"0" + extension + b"\r\n" + trailers + b"\r\n"


class RawServer:
    """Answers each request on a connection with the next canned response; counts connections and
    keeps each request's bytes."""

    def __init__(self, responses, tls=None):
        """``tls``: an ssl.SSLContext to serve with (each connection's handshake then runs at accept)."""
        self.responses = list(responses)
        self.connections = 0
        self.requests = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        if tls is not None:
            self.listener = tls.wrap_socket(self.listener, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"  # as an upstream for a Proxy
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            buffer = b""
            while self.responses:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                respond = self.responses.pop(0)
                if respond(conn) == "close":
                    return

    def close(self):
        self.listener.close()


def send(*parts, pause=0.0, then=None):
    def respond(conn):
        for part in parts:
            conn.sendall(part)
            time.sleep(pause)
        return then
    return respond


def read_all(body, timeout=2.0):
    """Everything an UpstreamBody gives until its end (each read must come within ``timeout``); closes it."""
    out = b""
    try:
        while True:
            data = body.read(timeout)
            assert data is not None, "a read timed out"
            if not data:
                return out
            out += data
    finally:
        body.close()
