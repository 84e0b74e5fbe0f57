"""Logging: level from config, stderr always, log/access.log rotated daily with need_log_to_file.
Every handler scrubs token-shaped strings (see redact.py)."""
from __future__ import annotations

import logging
import os
from .redact import RedactingFilter
from .settings import Settings
from .shared_log_file import shared_daily_file

FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"
# Our handlers on the root logger carry this name prefix (logging's own Handler.name), so that
# configuring again (create_app runs more than once in tests) replaces them instead of adding more.
HANDLER_PREFIX = "backend_to_api."


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in list(root.handlers):
        if (handler.get_name() or "").startswith(HANDLER_PREFIX):
            root.removeHandler(handler)
            handler.close()
    handlers = {"stderr": logging.StreamHandler()}
    if settings.need_log_to_file:
        os.makedirs(settings.log_dir, exist_ok=True)
        handlers["access_log"] = shared_daily_file(os.path.join(settings.log_dir, "access.log"))
    for name, handler in handlers.items():
        handler.set_name(HANDLER_PREFIX + name)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    # urllib3 logs every URL at DEBUG; ours are enough.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, root.level))
