"""backend-to-api: OpenAI-compatible API over the ChatGPT backend-api.

Request flow (one direction): api -> auth -> translate -> upstream -> sse -> render.
The app factory is ``backend_to_api.app.create_app``. This file imports nothing heavy on purpose:
gunicorn's master reads settings from here before its gevent workers monkey-patch the stdlib.
"""
__version__ = "1.0.0"
