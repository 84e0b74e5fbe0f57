"""Stored responses: what GET /v1/responses/{id} shows and previous_response_id continues.

One store entry per response, ``b2a:resp:<caller>:<id>`` (the store adds the namespace) with the
Response object and the conversation up to and including it, as Responses items (every earlier
turn's input and output items, then this turn's): continuing a conversation reads one key, and the
chain stays whole even after an earlier response expires or is deleted. ``<caller>`` is a
fingerprint of the caller's key, so a response is invisible to every other key, and the id alone
(which a client may log or share) opens nothing. Entries expire after ``responses_ttl``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from ..errors import ApiError
from ..redact import fingerprint


@dataclass(frozen=True)
class StoredResponse:
    response: Dict[str, Any]
    items: List[Dict[str, Any]]  # the conversation through this response, as Responses items


class ResponseStore:
    def __init__(self, store, ttl: float) -> None:
        self.store = store
        self.ttl = ttl

    def save(self, caller_key: str, response: Dict[str, Any], items: Sequence[Dict[str, Any]]) -> None:
        self.store.set_json(self._key(caller_key, response["id"]), {"response": response, "items": list(items)},
                            ttl=self.ttl)

    def load(self, caller_key: str, response_id: str, param: Optional[str] = None) -> StoredResponse:
        """The stored response, or a 404 (never found: another caller's id looks exactly the same)."""
        value = self.store.get_json(self._key(caller_key, response_id))
        if not isinstance(value, dict):
            raise not_found(response_id, param)
        return StoredResponse(value["response"], value["items"])

    def delete(self, caller_key: str, response_id: str) -> None:
        self.load(caller_key, response_id)  # 404 for an unknown id, as OpenAI answers
        self.store.delete(self._key(caller_key, response_id))

    @staticmethod
    def _key(caller_key: str, response_id: str) -> str:
        return f"resp:{fingerprint(caller_key)}:{fingerprint(response_id)}"


def not_found(response_id: str, param: Optional[str] = None) -> ApiError:
    """OpenAI's answers for an unknown (expired, deleted or someone else's) response id: 404 on
    GET/DELETE; as a ``previous_response_id``, 400 ``previous_response_not_found``."""
    if param is not None:
        return ApiError(400, f"Previous response with id '{response_id}' not found.", "invalid_request_error",
                        code="previous_response_not_found", param=param)
    return ApiError(404, f"Response with id '{response_id}' not found.", "invalid_request_error")
