"""HTTP layer: one blueprint per concern; each reads the shared Services from the app."""
from __future__ import annotations

from flask import current_app

from ..services import Services


def services() -> Services:
    return current_app.extensions["backend_to_api"]
