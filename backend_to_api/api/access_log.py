"""One access-log line per request: id, method, path, model, status, time to first byte, duration.
Written when the response is closed, so a stream is logged once it has ended."""
from __future__ import annotations

import logging
import time
import uuid
from typing import Callable, Optional

from flask import Flask, Response, g, request

log = logging.getLogger("backend_to_api.access")


class RequestTiming:
    def __init__(self) -> None:
        self.request_id = "req_" + uuid.uuid4().hex[:20]
        self.started = time.monotonic()
        self.first_byte_at: Optional[float] = None
        self.client_gone = False

    def first_byte(self) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()

    def ms(self, moment: Optional[float]) -> str:
        return "-" if moment is None else f"{(moment - self.started) * 1000:.0f}ms"


def install_access_log(app: Flask, count: Callable[[str, str, int], None]) -> None:
    """``count(route, model, status)`` is called once per request, when its line is written."""

    @app.before_request
    def start_timing() -> None:
        g.timing = RequestTiming()

    @app.after_request
    def finish_timing(response: Response) -> Response:
        timing = g.get("timing") or RequestTiming()
        response.headers["X-Request-Id"] = timing.request_id
        if not response.is_streamed:
            timing.first_byte()
        model = g.get("model", "-")
        line = (timing.request_id, request.method, request.path, model, response.status_code)
        # The rule, not the path: one label per route however many paths clients probe.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"

        def done() -> None:
            _write(timing, line)
            count(route, model, response.status_code)

        response.call_on_close(done)
        return response


def _write(timing: RequestTiming, line: tuple) -> None:
    request_id, method, path, model, status = line
    log.info(
        "%s %s %s model=%s status=%s ttfb=%s duration=%s%s", request_id, method, path, model, status,
        timing.ms(timing.first_byte_at), timing.ms(time.monotonic()), " client_gone" if timing.client_gone else "",
    )
