"""What a stream that already answered 200 ends with when something fails (errors.stream_failure,
shared by chat, structured output and the Responses API streams)."""
from __future__ import annotations

import logging

from backend_to_api.errors import UpstreamError, bad_request, stream_failure


def test_an_api_error_is_passed_on_as_it_is():
    error = bad_request("nope", param="x")
    assert stream_failure(error, logging.getLogger("t"), "reading") is error


def test_a_bug_is_logged_with_its_traceback_and_told_as_a_502(caplog):
    try:
        {}["missing"]
    except KeyError as exc:
        with caplog.at_level(logging.ERROR, logger="t"):
            error = stream_failure(exc, logging.getLogger("t"), "rendering the reply")
    assert isinstance(error, UpstreamError) and error.status == 502 and error.code == "internal_error"
    assert error.message == "Rendering the reply failed."
    [record] = caplog.records
    assert record.getMessage() == "rendering the reply failed" and record.exc_info[0] is KeyError
