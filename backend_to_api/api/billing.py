"""GET /dashboard/billing/subscription and /dashboard/billing/usage (also under /v1): stubs.

A ChatGPT account has no API balance, but NextChat asks for one when its settings page opens, and
one-api when it refreshes a channel's balance; an error there reads as a broken key. So: a fixed
limit and zero usage, in the shapes both read (openai-compat.md item 29): `hard_limit_usd` and
`total_usage` (in cents).
"""
from __future__ import annotations

from flask import Blueprint, jsonify

from . import require_api_key

HARD_LIMIT_USD = 100.0  # only a display value: the real limits are the upstream's message caps
ACCESS_UNTIL = 4102444800  # 2100-01-01


def billing_blueprint(prefix: str) -> Blueprint:
    blueprint = Blueprint("billing", __name__, url_prefix=prefix)
    for base in ("/dashboard/billing", "/v1/dashboard/billing"):
        blueprint.add_url_rule(f"{base}/subscription", view_func=subscription, methods=["GET"],
                               endpoint=f"subscription{base.replace('/', '_')}")
        blueprint.add_url_rule(f"{base}/usage", view_func=usage, methods=["GET"], endpoint=f"usage{base.replace('/', '_')}")
    return blueprint


def subscription():
    require_api_key()
    return jsonify({
        "object": "billing_subscription",
        "has_payment_method": True,
        "hard_limit_usd": HARD_LIMIT_USD,
        "soft_limit_usd": HARD_LIMIT_USD,
        "system_hard_limit_usd": HARD_LIMIT_USD,
        "access_until": ACCESS_UNTIL,
    })


def usage():
    require_api_key()
    return jsonify({"object": "list", "total_usage": 0})
