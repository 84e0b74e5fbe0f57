"""The built-in model table, as data: public name -> what the upstream is sent.

Each entry takes the same fields as an entry of config.json's ``models`` object (models.py reads
both the same way), plus ``aliases_key`` for the seven names of the original project, whose public
names (comma-separated aliases) come from their ``*_new_name`` key as before.

Sources (shared/spec/backend-api-2026.md 1.1-1.3): the gpt-5 slugs, ``auto`` and the two thinking
variants sent as ``auto`` + the ``reason`` hint follow aurora [A] (8fcdbeb, 2026-08-21); the dotted
names (``gpt-4.1`` -> ``gpt-4-1``, ``gpt-5.2`` -> ``gpt-5-2``) and gpt-5-1/5-2 follow gpt4free [G];
gpt-5-thinking/-pro/-mini follow chat2api [C]'s per-plan lists. ``thinking: true`` marks the models
whose turn may carry ``thinking_effort`` (OpenAI's ``reasoning_effort`` mapped, translate/thinking.py);
``reasoning: true`` keeps the o1 rule of no system role upstream.
"""
from __future__ import annotations

from typing import Any, Dict

_CL100K = {"tokenizer": "cl100k_base"}
_THINKS = {"thinking": True}
# [A]: the web app's "Thinking" is model auto + the reason hint; the server picks the model.
_AUTO_THINKING = {"slug": "auto", "hints": ["reason"], "thinking": True}

DEFAULT_MODELS: Dict[str, Dict[str, Any]] = {
    # The original's seven families (names from their *_new_name keys).
    "gpt-3.5-turbo": {"slug": "text-davinci-002-render-sha", "aliases_key": "gpt_3_5_new_name", **_CL100K},
    "gpt-4-s": {"slug": "gpt-4", "aliases_key": "gpt_4_s_new_name", **_CL100K},
    "gpt-4-mobile": {"slug": "gpt-4-mobile", "aliases_key": "gpt_4_mobile_new_name", **_CL100K},
    "gpt-4o": {"slug": "gpt-4o", "aliases_key": "gpt_4_o_new_name"},
    "gpt-4o-mini": {"slug": "gpt-4o-mini", "aliases_key": "gpt_4_o_mini_new_name"},
    "o1-preview": {"slug": "o1-preview", "aliases_key": "o1_preview_new_name", "reasoning": True},
    "o1-mini": {"slug": "o1-mini", "aliases_key": "o1_mini_new_name", "reasoning": True},
    # Today's (2026).
    "auto": {"slug": "auto", **_THINKS},
    "gpt-5": {"slug": "gpt-5", **_THINKS},
    "gpt-5-thinking": {"slug": "gpt-5-thinking", **_THINKS},
    "gpt-5-pro": {"slug": "gpt-5-pro", **_THINKS},
    "gpt-5-mini": {"slug": "gpt-5-mini", **_THINKS},
    "gpt-5-1": {"slug": "gpt-5-1", **_THINKS},
    "gpt-5-2": {"slug": "gpt-5-2", **_THINKS},
    "gpt-5-5": {"slug": "gpt-5-5", **_THINKS},
    "gpt-5-5-instant": {"slug": "gpt-5-5-instant", **_THINKS},
    "gpt-5-5-thinking": {"slug": "gpt-5-5-thinking", **_THINKS},
    "gpt-5-5-pro": {"slug": "gpt-5-5-pro", **_THINKS},
    "gpt-5-6": {"slug": "gpt-5-6", **_THINKS},
    "gpt-5-6-pro": {"slug": "gpt-5-6-pro", **_THINKS},
    "gpt-5-6-thinking": dict(_AUTO_THINKING),
    "gpt-5-6-t-mini": dict(_AUTO_THINKING),
    "gpt-4.1": {"slug": "gpt-4-1"},
    "gpt-4.1-mini": {"slug": "gpt-4-1-mini"},
    "o3": {"slug": "o3", **_THINKS},
    "o4-mini": {"slug": "o4-mini", **_THINKS},
    "o4-mini-high": {"slug": "o4-mini-high", **_THINKS},
}
