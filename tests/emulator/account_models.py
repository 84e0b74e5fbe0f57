"""GET /backend-api/models per account: the slugs each token subject sees, configurable per test.

    POST /_emulator/account_models {"subject": "rt-x", "models": [...], "status": 200, "delay": 0}

sets what the account of refresh token ``subject`` (the JWT's ``sub``) gets: ``models`` items are
slugs (made into full upstream items) or objects sent as they are (e.g. ``{"id": ...}`` or
``{"model": {"slug": ...}}``, the other shapes peers read); ``status`` other than 200 answers
``{"detail": "Emulated model list failure"}`` with it; ``delay`` seconds pass before the answer.
Accounts not configured get DEFAULT_SLUGS. Cleared by /_emulator/reset.
"""
from __future__ import annotations

import threading
import time

from flask import Blueprint, current_app, g, jsonify, request

account_models_bp = Blueprint("account_models", __name__)

# Every slug of the proxy's built-in table (model_defaults.py), so a default account can use all of it.
DEFAULT_SLUGS = ("text-davinci-002-render-sha", "gpt-4", "gpt-4-mobile", "gpt-4o", "gpt-4o-mini", "o1-preview",
                 "o1-mini", "auto", "gpt-5", "gpt-5-thinking", "gpt-5-pro", "gpt-5-mini", "gpt-5-1", "gpt-5-2",
                 "gpt-5-5", "gpt-5-5-instant", "gpt-5-5-thinking", "gpt-5-5-pro", "gpt-5-6", "gpt-5-6-pro",
                 "gpt-4-1", "gpt-4-1-mini", "o3", "o4-mini", "o4-mini-high")
DEFAULT_ANSWER = {"models": list(DEFAULT_SLUGS), "status": 200, "delay": 0.0}


class AccountModels:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, dict] = {}

    def configure(self, subject: str, answer: dict) -> None:
        with self._lock:
            self._answers[subject] = {**DEFAULT_ANSWER, **answer}

    def answer_for(self, subject: str | None) -> dict:
        with self._lock:
            return dict(self._answers.get(subject or "", DEFAULT_ANSWER))


def _account_models() -> AccountModels:
    return current_app.extensions["emulator"].account_models


@account_models_bp.get("/backend-api/models")
def models():
    answer = _account_models().answer_for(g.token_subject)
    time.sleep(answer["delay"])
    if answer["status"] != 200:
        return jsonify(detail="Emulated model list failure"), answer["status"]
    items = [_item(slug) if isinstance(slug, str) else slug for slug in answer["models"]]
    return jsonify(models=items, categories=[])


def _item(slug: str) -> dict:
    return {"slug": slug, "max_tokens": 8191, "title": slug, "description": f"Emulated {slug}",
            "tags": [], "capabilities": {}, "product_features": {}}


@account_models_bp.post("/_emulator/account_models")
def configure():
    body = request.get_json(silent=True, force=True)
    problem = _problem(body)
    if problem:
        return jsonify(detail=problem), 400
    _account_models().configure(body["subject"], {k: v for k, v in body.items() if k != "subject"})
    return jsonify(ok=True)


def _problem(body: object) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("subject"), str):
        return "subject (a refresh token) is required"
    if not set(body) <= {"subject", "models", "status", "delay"}:
        return "known keys: subject, models, status, delay"
    if not isinstance(body.get("models", []), list):
        return "models must be a list"
    if not isinstance(body.get("status", 200), int) or not isinstance(body.get("delay", 0), (int, float)):
        return "status must be an integer, delay a number"
    return None
