"""Read a download whole, but never more than a size cap nor past a deadline (tool output from the
upstream, and the files clients ask us to fetch: both come from places we do not control)."""
from __future__ import annotations

import time
from typing import Callable, Iterable


def read_bounded(pieces: Iterable[bytes], max_bytes: int, deadline: float,
                 too_large: Callable[[], Exception], too_slow: Callable[[], Exception]) -> bytes:
    """The pieces joined; raises ``too_large()`` as soon as they pass ``max_bytes``, ``too_slow()``
    once ``time.monotonic()`` passes ``deadline``."""
    kept, size = [], 0
    for piece in pieces:
        size += len(piece)
        if size > max_bytes:
            raise too_large()
        if time.monotonic() > deadline:
            raise too_slow()
        kept.append(piece)
    return b"".join(kept)
