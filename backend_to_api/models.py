"""Which public model names exist, and what each means upstream.

Each family has a config key listing its public names (comma-separated aliases, as in the
original's ``*_new_name`` keys); the family decides the upstream slug and the tokenizer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import model_not_found
from .settings import ConfigError, Settings


@dataclass(frozen=True)
class ModelFamily:
    family: str        # the original's "ori_name"
    slug: str          # the upstream model slug
    settings_key: str  # the Settings attribute holding its aliases
    tokenizer: str     # tiktoken encoding used for usage counts
    reasoning: bool = False  # o1-style: no system role upstream


FAMILIES: Tuple[ModelFamily, ...] = (
    ModelFamily("gpt-3.5-turbo", "text-davinci-002-render-sha", "gpt_3_5_new_name", "cl100k_base"),
    ModelFamily("gpt-4-s", "gpt-4", "gpt_4_s_new_name", "cl100k_base"),
    ModelFamily("gpt-4-mobile", "gpt-4-mobile", "gpt_4_mobile_new_name", "cl100k_base"),
    ModelFamily("gpt-4o", "gpt-4o", "gpt_4_o_new_name", "o200k_base"),
    ModelFamily("gpt-4o-mini", "gpt-4o-mini", "gpt_4_o_mini_new_name", "o200k_base"),
    ModelFamily("o1-preview", "o1-preview", "o1_preview_new_name", "o200k_base", reasoning=True),
    ModelFamily("o1-mini", "o1-mini", "o1_mini_new_name", "o200k_base", reasoning=True),
)


@dataclass(frozen=True)
class ModelSpec:
    """A resolved request model: the name the client sent plus its family.

    For a GPT (see ``gpts.py``) also the GPT's id and the info the conversation must carry.
    """

    name: str
    family: ModelFamily
    gizmo_id: Optional[str] = None
    gizmo: Optional[Mapping[str, Any]] = field(default=None, compare=False, repr=False)

    @property
    def slug(self) -> str:
        return self.family.slug


class ModelRegistry:
    def __init__(self, settings: Settings) -> None:
        self._by_name: Dict[str, ModelFamily] = {}
        for family in FAMILIES:
            for alias in _aliases(getattr(settings, family.settings_key)):
                if alias in self._by_name:
                    raise ConfigError(
                        f"config key {family.settings_key}: model name {alias!r} is already "
                        f"used by {self._by_name[alias].settings_key}"
                    )
                self._by_name[alias] = family

    def resolve(self, name: str) -> ModelSpec:
        family = self._by_name.get(name)
        if family is None:
            raise model_not_found(name)
        return ModelSpec(name, family)

    def names(self) -> List[str]:
        return list(self._by_name)

    def family_names(self, family: str) -> List[str]:
        """The configured names of one family (the original's ori_name), in config order."""
        return [name for name, spec in self._by_name.items() if spec.family == family]


def _aliases(value: str) -> List[str]:
    return [alias.strip() for alias in value.split(",") if alias.strip()]
