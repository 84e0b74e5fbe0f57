"""``gpts.json``: GPT model names -> GPT ids. Light on purpose: main.py validates it in the gunicorn
master, before the workers monkey-patch the standard library, so nothing here may import requests,
redis or the app (a pool created before patching is not greenlet-safe)."""
from __future__ import annotations

import re
from typing import Dict, Sequence

from .settings import ConfigError, Settings, read_json_object

# What GPT ids look like (g-<id>-<slug>). The id goes into an upstream URL path, fetched with
# key_for_gpts_info's token: anything else ("../me") must never reach the upstream.
GIZMO_ID = re.compile(r"g-[A-Za-z0-9_-]{1,200}")


def load_gpts_file(path: str) -> Dict[str, str]:
    """``gpts.json`` -> {model name: gizmo id}. A missing file means no GPTs; a bad one is a ConfigError."""
    data = read_json_object(path, "GPTs file")
    names: Dict[str, str] = {}
    for name, entry in data.items():
        gizmo_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(gizmo_id, str) or not GIZMO_ID.fullmatch(gizmo_id.strip()):
            raise ConfigError(f"GPTs file {path}: {name!r} needs {{\"id\": \"g-...\"}}")
        names[name.strip()] = gizmo_id.strip()
    return names


def gpt_names(settings: Settings, builtin_names: Sequence[str]) -> Dict[str, str]:
    """The GPTs of ``settings.gpts_file``; a name that is also a built-in model is a ConfigError."""
    names = load_gpts_file(settings.gpts_file)
    clashes = sorted(set(names) & set(builtin_names))
    if clashes:
        raise ConfigError(f"GPTs file {settings.gpts_file}: model name {clashes[0]!r} is already a built-in model")
    return names
