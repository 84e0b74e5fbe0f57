"""Start backend-to-api.

    python main.py       gunicorn with the worker settings of config.json (and the environment)
    gunicorn main:app    the same, through gunicorn.conf.py

Nothing heavy is imported at module level: gunicorn's gevent workers monkey-patch the standard
library when they start, and the app (requests, redis, ...) must be imported after that.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from backend_to_api.settings import ConfigError, Settings, load_settings

_app = None


def __getattr__(name: str) -> Any:
    # `gunicorn main:app` looks this up inside each worker, after the patching.
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        from backend_to_api.app import create_app

        _app = create_app(start_background_jobs=True)
    return _app


def _check(settings: Settings) -> None:
    from backend_to_api.gpts_file import gpt_names
    from backend_to_api.models import ModelRegistry

    # Duplicate model names and a bad gpts.json are config errors: report them before forking.
    gpt_names(settings, ModelRegistry(settings).configured_names())


def main() -> int:
    try:
        settings = load_settings()
        _check(settings)
    except ConfigError as exc:
        print(f"backend-to-api: {exc}", file=sys.stderr)
        return 2
    from gunicorn.app.base import BaseApplication

    from backend_to_api.serving import gunicorn_options, prepare_master

    prepare_master(os.environ)

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options(settings).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return __getattr__("app")

    Server().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
