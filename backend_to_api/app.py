"""The application factory: ``create_app(settings)`` builds a ready app; nothing runs at import."""
from __future__ import annotations

from typing import Optional

from flask import Flask
from flask_cors import CORS

from .api.access_log import install_access_log
from .api.audio import audio_blueprint
from .api.billing import billing_blueprint
from .api.chat import chat_blueprint
from .api.responses import responses_blueprint
from .api.errors import register_error_handlers
from .api.health import health
from .api.images import images_blueprint
from .api.media_files import media_files
from .api.metrics import metrics_blueprint
from .api.models import models_blueprint
from .logging_setup import configure_logging
from .services import Services, build_services
from .settings import Settings, load_settings


def create_app(settings: Optional[Settings] = None, services: Optional[Services] = None,
               start_background_jobs: bool = False) -> Flask:
    settings = settings or load_settings()
    configure_logging(settings)
    services = services or build_services(settings)
    app = Flask(__name__, static_folder=None)  # no static files: /static/... is a 404 like any unknown path
    # "/images//x" would otherwise be answered by werkzeug's HTML 308 redirect; unknown paths are
    # 404s in OpenAI's shape like everything else.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes  # werkzeug answers 413 beyond it
    app.json.sort_keys = False  # keep OpenAI's field order
    app.json.ensure_ascii = False
    app.extensions["backend_to_api"] = services
    # Browsers call this from NextChat pages on other origins (openai-compat.md item 24).
    CORS(app, resources={r"/*": {"origins": "*"}}, send_wildcard=True, allow_headers="*",
         expose_headers=["X-Request-Id"], max_age=86400)
    install_access_log(app, lambda route, model, status: _count_request(services, route, model, status))
    register_error_handlers(app)
    app.register_blueprint(chat_blueprint(settings.api_prefix))
    app.register_blueprint(responses_blueprint(settings.api_prefix))
    app.register_blueprint(models_blueprint(settings.api_prefix))
    app.register_blueprint(images_blueprint(settings.api_prefix))
    app.register_blueprint(audio_blueprint(settings.api_prefix))
    app.register_blueprint(billing_blueprint(settings.api_prefix))
    app.register_blueprint(health)
    app.register_blueprint(media_files)
    app.register_blueprint(metrics_blueprint)
    if start_background_jobs:  # a serving worker, not a test's app
        from .scheduler import start_scheduler
        from .serving import prepare_worker

        prepare_worker(settings)
        start_scheduler(services)
    return app


def _count_request(services: Services, route: str, model: str, status: int) -> None:
    # Model names come from clients: only configured ones become label values.
    known = model in services.models.names() or model in services.gpts.names()
    services.metrics.requests.labels(route, model if known else "other", str(status)).inc()
