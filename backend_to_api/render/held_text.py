"""The scan both link machines (citations, sandbox links) share: pass text through up to each
opening character, let the machine consume what follows it, and hold back the tail it cannot decide
on yet (a marker or link split across upstream events). Pure."""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

# consume(rest, out): rest starts with the opening character; append output to ``out`` and return how
# many characters were consumed, or None to hold ``rest`` until more text arrives.
Consumer = Callable[[str, List[str]], Optional[int]]


def release(held: str, opening: str, consume: Consumer) -> Tuple[str, str]:
    """(text to show now, text to keep holding)."""
    out: List[str] = []
    rest = held
    while rest:
        start = rest.find(opening)
        if start < 0:
            out.append(rest)
            return "".join(out), ""
        out.append(rest[:start])
        rest = rest[start:]
        consumed = consume(rest, out)
        if consumed is None:
            break
        rest = rest[consumed:]
    return "".join(out), rest
