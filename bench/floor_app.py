"""The least a Flask streaming endpoint can do: read the JSON body, stream two SSE frames.

bench/framework_floor.py serves this under gunicorn with gevent, as the proxy is served, to
measure the CPU per request of Flask + werkzeug + gunicorn themselves on this machine: no proxy
can cost less per request while it is built on them.
"""
from __future__ import annotations

from flask import Flask, Response, request

app = Flask(__name__)


@app.post("/v1/chat/completions")
def chat_completions() -> Response:
    model = request.get_json()["model"]

    def frames():
        yield b'data: {"object": "chat.completion.chunk", "model": "%s"}\n\n' % model.encode()
        yield b"data: [DONE]\n\n"

    return Response(frames(), mimetype="text/event-stream")
