"""Logging: level from config, stderr always, log/access.log rotated daily with need_log_to_file.
Every handler scrubs token-shaped strings (see redact.py)."""
from __future__ import annotations

import logging
import os
from .redact import RedactingFilter
from .settings import Settings
from .shared_log_file import SharedDailyFileHandler

FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in list(root.handlers):
        if getattr(handler, "_backend_to_api", False):
            root.removeHandler(handler)
    handlers = [logging.StreamHandler()]
    if settings.need_log_to_file:
        os.makedirs(settings.log_dir, exist_ok=True)
        handlers.append(SharedDailyFileHandler(os.path.join(settings.log_dir, "access.log")))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RedactingFilter())
        handler._backend_to_api = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # urllib3 logs every URL at DEBUG; ours are enough.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, root.level))
