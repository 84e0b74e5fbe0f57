"""Upstream stream decoding, with no I/O: bytes -> ``ServerSentEvent`` (``decoder``) -> typed events
(``interpret``, using ``patch`` for the v1 delta encoding). The event types live in ``events``.
"""
from backend_to_api.sse.decoder import ServerSentEvent, SSEDecoder, SSEFormatError
from backend_to_api.sse.interpret import ReplyInterpreter

__all__ = ["ReplyInterpreter", "SSEDecoder", "SSEFormatError", "ServerSentEvent"]
