"""The v1 delta document: backend-api's JSON-patch-like operations, applied to one JSON document.

A frame is ``{"p": path, "o": op, "v": value}``. ``p`` is a JSON pointer ("" is the whole document,
list indices are integers, ``-`` is tolerated as "the end of the list"); ``o`` is add, append,
replace, truncate, remove or patch (``v`` is then a list of frames, their paths relative to ``p``).
A frame without ``p``/``o`` repeats the previous frame's: the common case is ``{"v": "lo"}``, more text
(a bare string after a root ``add`` or ``patch``, which no root op can take, appends to ``parts/0``).

Updates never mutate a container that was already visible: an operation copies the containers on
its path (the root, the message, its content, the ``parts`` list: a few small objects) and shares
everything else. So every snapshot handed to the interpreter, and on to renderers as ``message=``,
stays valid; the cost does not grow with the text; and a frame that fails leaves the document as it was.
"""
from __future__ import annotations

from typing import Any, Union

_OPS = ("add", "append", "replace", "truncate", "remove", "patch")
_MAX_PATCH_DEPTH = 8  # nested "patch" frames: upstream uses one level; bounded so recursion is too
_MAX_INDEX_DIGITS = 9
_MISSING: Any = object()
_TEXT_PATH = "/message/content/parts/0"

Key = Union[str, int]


class PatchError(ValueError):
    """A v1 delta frame could not be applied: unknown op, path not found, wrong value type.

    A sibling of SSEFormatError, not a subclass: the framing was fine, the content was not. The
    interpreter reports it as ``UpstreamFailure(code="bad_delta")``; it never escapes ``feed``.
    """


class DeltaDocument:
    """The document a v1 stream patches; ``document`` is the current snapshot (treat as read-only)."""

    def __init__(self, document: Any = None) -> None:
        self._document: Any = {} if document is None else document
        self._last: tuple[Any, Any] = (None, None)

    @property
    def document(self) -> Any:
        return self._document

    def apply(self, frame: Any) -> None:
        """Apply one frame; atomic: on PatchError the document is unchanged."""
        path, op, value = self._resolve(frame)
        self._document = _apply(self._document, _tokens(path), op, value, 0)

    def _resolve(self, frame: Any) -> tuple[Any, Any, Any]:
        if not isinstance(frame, dict):
            raise PatchError(f"delta frame is a {type(frame).__name__}, not an object")
        bare = "p" not in frame and "o" not in frame
        if bare and _starts_message(frame.get("v")):
            # {"v": {"message": ...}, "c": n}: upstream omits p/o when a new message replaces the
            # document; repeating the previous op (often a text append) would be wrong here.
            self._last = ("", "add")
        elif bare and self._last[0] == "" and isinstance(frame.get("v"), str):
            # Text right after a root add or patch: repeating that op cannot take a string; aurora
            # reads a bare value as more text (spec 2026 3.2), and so do we here.
            self._last = (_TEXT_PATH, "append")
        else:
            self._last = _explicit(frame, *self._last)
        return (*self._last, _value(frame, self._last[1]))


def _starts_message(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("message"), dict)


def _explicit(frame: dict, last_path: Any, last_op: Any) -> tuple[Any, Any]:
    path, op = frame.get("p", last_path), frame.get("o", last_op)
    if path is None or op is None:
        raise PatchError("delta frame without path or operation, and no previous one to repeat")
    return path, op


def _value(frame: dict, op: Any) -> Any:
    if "v" not in frame and op != "remove":
        raise PatchError(f"{_short(op)} frame without a value")
    return frame.get("v")


def _tokens(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise PatchError(f"path is a {type(path).__name__}, not a string")
    if not path:
        return []
    tokens = path.split("/")
    if path.startswith("/"):
        tokens = tokens[1:]
    return [token.replace("~1", "/").replace("~0", "~") for token in tokens]


def _apply(root: Any, tokens: list[str], op: Any, value: Any, depth: int) -> Any:
    if op == "patch":
        return _apply_patch(root, tokens, value, depth)
    if op not in _OPS:
        raise PatchError(f"unknown operation {_short(op)}")
    if not tokens:
        return {} if op == "remove" else _new_value(root, op, value)
    chain, parent = _walk(root, tokens[:-1])
    return _rebuild(chain, _apply_at(parent, tokens[-1], op, value))


def _apply_patch(root: Any, tokens: list[str], frames: Any, depth: int) -> Any:
    if not isinstance(frames, list):
        raise PatchError("patch value is not a list")
    if depth >= _MAX_PATCH_DEPTH:
        raise PatchError("patch frames nested too deeply")
    last: tuple[Any, Any] = (None, None)
    for frame in frames:
        if not isinstance(frame, dict):
            raise PatchError("patch entry is not an object")
        last = _explicit(frame, *last)
        root = _apply(root, tokens + _tokens(last[0]), last[1], _value(frame, last[1]), depth + 1)
    return root


def _walk(root: Any, tokens: list[str]) -> tuple[list[tuple[Any, Key]], Any]:
    """Follow ``tokens`` from the root; returns the (container, key) chain and the node reached."""
    chain: list[tuple[Any, Key]] = []
    node = root
    for token in tokens:
        key, exists = _child_key(node, token)
        if not exists:
            raise PatchError(f"path not found at {_short(token)}")
        chain.append((node, key))
        node = node[key]
    return chain, node


def _rebuild(chain: list[tuple[Any, Key]], value: Any) -> Any:
    """Copy each container on the path with its child replaced: the old snapshot stays intact."""
    for container, key in reversed(chain):
        container = _copy(container)
        container[key] = value
        value = container
    return value


def _child_key(container: Any, token: str) -> tuple[Key, bool]:
    if isinstance(container, dict):
        return token, token in container
    if isinstance(container, list):
        if token == "-":
            return len(container), False
        if not (token.isascii() and token.isdigit()) or len(token) > _MAX_INDEX_DIGITS:
            raise PatchError(f"bad list index {_short(token)}")
        index = int(token)
        if index > len(container):
            raise PatchError(f"list index {index} out of range")
        return index, index < len(container)
    raise PatchError(f"cannot descend into a {type(container).__name__}")


def _copy(container: Any) -> Any:
    return dict(container) if isinstance(container, dict) else list(container)


def _apply_at(parent: Any, token: str, op: str, value: Any) -> Any:
    """Return a copy of ``parent`` with ``op`` applied to its child ``token``."""
    key, exists = _child_key(parent, token)
    if isinstance(key, int):
        return _apply_in_list(parent, key, exists, op, value)
    if op == "remove":
        # A key already absent is the outcome the op asked for.
        return {k: v for k, v in parent.items() if k != key} if exists else parent
    return {**parent, key: _new_value(parent[key] if exists else _MISSING, op, value)}


def _apply_in_list(parent: list, index: int, exists: bool, op: str, value: Any) -> list:
    result = list(parent)
    if op == "remove":
        if not exists:
            raise PatchError(f"cannot remove missing list index {index}")
        del result[index]
    elif op == "add" or not exists:
        # add inserts (JSON Patch); any other op on the slot just past the end creates it
        result.insert(index, value if op == "add" else _new_value(_MISSING, op, value))
    else:
        result[index] = _new_value(parent[index], op, value)
    return result


def _new_value(old: Any, op: str, value: Any) -> Any:
    if op in ("add", "replace"):
        return value
    if op == "append":
        return _appended(old, value)
    return _truncated(old, value)


def _appended(old: Any, value: Any) -> Any:
    if old is _MISSING or old is None:  # appending to nothing creates the value
        return value
    if isinstance(old, str) and isinstance(value, str):
        return old + value
    if isinstance(old, list):
        return old + value if isinstance(value, list) else old + [value]
    if isinstance(old, dict) and isinstance(value, dict):
        return {**old, **value}
    raise PatchError(f"cannot append a {type(value).__name__} to a {type(old).__name__}")


def _truncated(old: Any, length: Any) -> Any:
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise PatchError(f"truncate length {_short(length)} is not a non-negative integer")
    if old is _MISSING or not isinstance(old, (str, list)):
        raise PatchError("truncate target is not a string or a list")
    return old[:length]


def _short(value: Any) -> str:
    """repr for error messages, bounded: a frame's values can be arbitrarily long or deep."""
    if not isinstance(value, (str, int, float, type(None))):
        return f"<{type(value).__name__}>"
    text = repr(value[:41] if isinstance(value, str) else value)
    return text if len(text) <= 40 else text[:37] + "..."
