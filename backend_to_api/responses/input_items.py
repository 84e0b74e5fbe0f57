"""GET /v1/responses/{id}/input_items: a stored response's input as OpenAI's list page.

The input of a response is everything the model was given for it: the earlier turns carried by
``previous_response_id`` and this request's items, i.e. the stored conversation without the
response's own output (store.py). Items are shown in the shapes OpenAI lists them in: a message
whose content was a string gets its one text part, and every item has an ``id``; an item the
client sent without one gets an id made from the response id and its position, so the same item
has the same id on every call (``after`` pages by it).
"""
from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Mapping, Optional

from ..errors import bad_request
from .store import StoredResponse

LIMIT_DEFAULT, LIMIT_MAX = 20, 100
ID_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "custom_tool_call": "ctc",
               "custom_tool_call_output": "ctco", "reasoning": "rs"}


def input_items(stored: StoredResponse) -> List[Dict[str, Any]]:
    """The response's input items, oldest first, each with an id."""
    response_id = stored.response["id"]
    items = stored.items[:len(stored.items) - len(stored.response.get("output") or [])]
    return [_listed(item, response_id, index) for index, item in enumerate(items)]


def list_page(items: List[Dict[str, Any]], query: Mapping[str, str]) -> Dict[str, Any]:
    """OpenAI's list object of these items: ``order`` (asc|desc, default desc), ``limit``
    (1..100, default 20), ``after`` (an item id: the page starts after it)."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("'order' must be 'asc' or 'desc'.", param="order")
    limit = _limit(query.get("limit"))
    ordered = items if order == "asc" else items[::-1]
    after = query.get("after")
    if after:
        ids = [item["id"] for item in ordered]
        if after not in ids:
            raise bad_request(f"No input item with id '{after}' in this response.", param="after")
        ordered = ordered[ids.index(after) + 1:]
    page = ordered[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(ordered) > limit}


def _limit(value: Optional[str]) -> int:
    if value is None:
        return LIMIT_DEFAULT
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= LIMIT_MAX:
        raise bad_request(f"'limit' must be an integer from 1 to {LIMIT_MAX}.", param="limit")
    return int(value)


def _listed(item: Dict[str, Any], response_id: str, index: int) -> Dict[str, Any]:
    listed = dict(item)
    kind = listed.setdefault("type", "message")
    if not listed.get("id"):
        digest = hashlib.sha256(f"{response_id}:{index}".encode()).hexdigest()[:48]
        listed["id"] = f"{ID_PREFIXES.get(kind, 'item')}_{digest}"
    listed.setdefault("status", "completed")  # the listed types require one (an input item is complete)
    if kind == "message":
        _text_parts(listed)
    return listed


def _text_parts(message: Dict[str, Any]) -> None:
    assistant = message.get("role") == "assistant"
    if isinstance(message.get("content"), str):
        text = message["content"]
        message["content"] = [{"type": "output_text", "text": text, "annotations": []} if assistant
                              else {"type": "input_text", "text": text}]
