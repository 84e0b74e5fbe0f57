"""Ids that go into upstream URL paths (file, conversation, GPT ids), checked before they do.

They come from the upstream's replies or the store, and a value like ``../../me`` or ``a/b?c`` must
never change which upstream path we call (with the user's token). Real ids are letters, digits,
``-`` and ``_`` (``file-…``, ``file_…``, UUIDs, ``g-…``): anything else is refused, not quoted,
because a server may decode ``%2F`` or resolve ``..`` before routing.
"""
from __future__ import annotations

import re

ID = re.compile(r"[A-Za-z0-9_-]{1,256}")


def segment(value: object) -> str:
    """``value`` itself when it is an id; ValueError otherwise."""
    if not isinstance(value, str) or not ID.fullmatch(value):
        raise ValueError(f"not an upstream id: {str(value)[:40]!r}")
    return value
