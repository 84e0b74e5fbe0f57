"""GET /metrics: Prometheus exposition, aggregated over all workers of this instance."""
from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from . import services

metrics_blueprint = Blueprint("metrics", __name__)


@metrics_blueprint.get("/metrics")
def metrics() -> Response:
    return Response(services().metrics.render(), mimetype=CONTENT_TYPE_LATEST)
