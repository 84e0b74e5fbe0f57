"""A chat turn is posted upstream at most once (issue 13, item 2).

The conversation POST is not idempotent: a resend is a second message in the user's ChatGPT history
and a second spend of their rate limit. An upstream that serves one chat (so the proxy keeps that
connection alive), then reads the whole next request and resets the connection, must receive that
request exactly once; the client gets a 502.
"""
import socket
import struct

import openai
import pytest

from .raw_http import RawServer, chunked, send
from .test_upstream_body import ANSWER_FRAMES, CHUNKED, JWT


def reset_after_reading(conn):
    """The request has been read in full (RawServer reads it before calling this): reset the
    connection, SO_LINGER 0, instead of answering."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return "close"


def test_a_request_on_a_kept_connection_that_is_reset_is_not_sent_again(start_proxy):
    answer = send(CHUNKED + chunked(ANSWER_FRAMES))
    # The third answer is there for a resend on a new connection, so that one would be seen.
    upstream = RawServer([answer, reset_after_reading, answer])
    try:
        # One worker: the second chat must find the connection the first one kept.
        proxy = start_proxy({"UPSTREAM_BASE_URL": upstream.url, "PROCESS_WORKERS": "1"})
        client = proxy.client(api_key=JWT, max_retries=0)
        messages = [{"role": "user", "content": "hi"}]
        first = client.chat.completions.create(model="gpt-4o", messages=messages)
        assert first.choices[0].message.content == "Hello there"
        assert upstream.connections == 1 and len(upstream.requests) == 1
        with pytest.raises(openai.APIStatusError) as failure:
            client.chat.completions.create(model="gpt-4o", messages=messages)
        assert failure.value.status_code == 502
        assert failure.value.body["code"] == "upstream_disconnected", failure.value.body
        assert len(upstream.requests) == 2, f"the conversation POST reached the upstream {len(upstream.requests) - 1} times"
        assert upstream.connections == 1
    finally:
        upstream.close()
