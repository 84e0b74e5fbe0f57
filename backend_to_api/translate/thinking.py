"""OpenAI's ``reasoning_effort`` in the upstream's own words (spec/backend-api-2026.md 1.2-1.3).

The upstream takes ``thinking_effort`` standard/extended/max; OpenAI's low/medium/high sent as they
are make it answer 422 (aurora [A] 2ed6b0b). The mapping is [A]'s since 2026-08-03; like [A], the
upstream words themselves are accepted too. On ``auto`` (the server picks the model) an effort above
standard also adds the ``reason`` hint, which is what asks for a thinking model there ([G] since
2827fe65 adds it for ``high``; [A] sends the web app's Thinking as auto + reason).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..errors import bad_request
from ..models import AUTO_SLUG, ModelFamily

EFFORTS = {
    "none": "standard", "minimal": "standard", "low": "standard",
    "medium": "extended", "high": "max", "xhigh": "max",
    "standard": "standard", "extended": "extended", "max": "max",
}
REASON_HINT = "reason"


def parse_reasoning_effort(value: Any) -> Optional[str]:
    """The client's ``reasoning_effort`` as the upstream word (None: not given); else a 400."""
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in EFFORTS:
        raise bad_request(f"Invalid value for 'reasoning_effort': {value!r}. Supported values are: "
                          "'none', 'minimal', 'low', 'medium', 'high' and 'xhigh'.",
                          param="reasoning_effort", code="invalid_value")
    return EFFORTS[value.strip().lower()]


def thinking_fields(family: ModelFamily, effort: Optional[str]) -> Dict[str, Any]:
    """``system_hints`` and ``thinking_effort`` for one turn (none of either: the keys are left out,
    as the original's payload had them). A model that cannot think ignores the client's effort."""
    hints: List[str] = list(family.hints)
    chosen = (effort or family.thinking_effort) if family.thinking else None
    if chosen and chosen != "standard" and family.slug == AUTO_SLUG and REASON_HINT not in hints:
        hints.append(REASON_HINT)
    fields: Dict[str, Any] = {}
    if hints:
        fields["system_hints"] = hints
    if chosen:
        fields["thinking_effort"] = chosen
    return fields
