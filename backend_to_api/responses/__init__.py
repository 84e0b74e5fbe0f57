"""The Responses API (POST/GET/DELETE /v1/responses) on top of the chat machinery.

A Responses request becomes a ChatRequest (request.py, items.py, tools.py), is opened through the
same ChatService, and its reply is read by the same ReplyRenderer; what differs is the shape of the
answer: output items and typed, numbered stream events (builder.py, events.py), produced by one
reader for both the streamed and the non-streamed answer (turn.py). Stored responses (store.py)
let a later request continue with ``previous_response_id``.
"""
