"""gunicorn's own logs (gunicorn.error, gunicorn.access) through the same scrubbing as ours.

gunicorn writes these through handlers of its own, apart from the root logger ours are on, and it
quotes what clients sent: a request line it cannot parse in full ("Invalid request from ip=...:
Invalid HTTP request line: 'GET /x?key=eyJ...'"), the URI of a request that failed, any bad
header. `logger_class` is gunicorn's documented setting for its logging (a class that quacks like
gunicorn.glogging.Logger); this one is gunicorn's own with our filter on both of its loggers, so
every handler they have, now or from a later logconfig, sees scrubbed records only.
"""
from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from .redact import RedactingFilter


class ScrubbingLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # runs again on a config reload (SIGHUP): one filter a logger still
        for log in (self.error_log, self.access_log):
            if not any(isinstance(existing, RedactingFilter) for existing in log.filters):
                log.addFilter(RedactingFilter())
