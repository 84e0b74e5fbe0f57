"""Which public model names exist, and what each means upstream: the model table.

The table is data: the built-in entries (model_defaults.py) with config.json's ``models`` object
laid over them (``{"name": {"slug", "aliases", "hints", "thinking_effort", "thinking", "reasoning",
"tokenizer"}}``; a known name's fields replace the built-in ones, ``null`` removes it). The seven
names of the original keep their ``*_new_name`` keys. Names are matched with dots read as dashes,
so ``gpt-5.2`` and ``gpt-5-2`` are one name (the upstream's slugs are dashed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import model_not_found
from .model_defaults import DEFAULT_MODELS
from .settings import ConfigError, Settings

TOKENIZERS = ("cl100k_base", "o200k_base")  # the encodings shipped in data/tiktoken
THINKING_EFFORTS = ("standard", "extended", "max")  # the upstream's words (spec 1.2)
AUTO_SLUG = "auto"  # the server routes it: every account can use it
ENTRY_FIELDS = ("slug", "aliases", "hints", "thinking_effort", "thinking", "reasoning", "tokenizer")


@dataclass(frozen=True)
class ModelFamily:
    family: str        # the table's name for it (the original's "ori_name")
    slug: str          # the upstream model slug
    settings_key: str = ""  # the Settings attribute holding its aliases ("" for newer entries)
    tokenizer: str = "o200k_base"  # tiktoken encoding used for usage counts
    reasoning: bool = False  # o1-style: no system role upstream
    thinking: bool = False   # its turns may carry thinking_effort (reasoning_effort, mapped)
    hints: Tuple[str, ...] = ()  # system_hints sent with every turn
    thinking_effort: Optional[str] = None  # sent when the client names no reasoning_effort


def passthrough_family(slug: str) -> ModelFamily:
    """A slug the account's model list has and the table lacks (model_catalog.py): sent as it is;
    thinking_effort only if the client asks (the upstream takes it on every model, spec 1.2 [A])."""
    return ModelFamily(slug, slug, thinking=True)


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


@dataclass(frozen=True)
class _Names:
    """The public names of one table entry, and where they were configured."""

    family: ModelFamily
    names: List[str]
    source: str      # the config key, for error messages
    strict: bool     # a configured key's names: a clash is a ConfigError, and they win over built-ins
    explicit: bool   # set by the operator (not a default value): always listed


class ModelRegistry:
    def __init__(self, settings: Settings) -> None:
        self._by_key: Dict[str, ModelFamily] = {}
        self._names: Dict[str, ModelFamily] = {}  # public names as written, in table order
        self._sources: Dict[str, str] = {}
        self._explicit: set = set()
        self._configured: List[str] = []
        entries = _entries(settings)
        # Configured names first: a built-in name never makes an existing config fail.
        for entry in sorted(entries, key=lambda item: not item.strict):
            for name in entry.names:
                self._add(name, entry)
        # Asked for each slug of every /v1/models answer: built once, the table does not change.
        self._covered = frozenset(self._by_key) | {canonical(family.slug) for family in self._names.values()}

    def _add(self, name: str, entry: _Names) -> None:
        key = canonical(name)
        if key in self._by_key:
            if not entry.strict:
                return  # a built-in name the operator gave to another model
            raise ConfigError(f"config key {entry.source}: model name {name!r} is already used by "
                              f"{self._sources[key]}")
        self._by_key[key] = entry.family
        self._names[name] = entry.family
        self._sources[key] = entry.source
        if entry.strict:
            self._configured.append(name)
        if entry.explicit:
            self._explicit.add(name)

    def find(self, name: str) -> Optional[ModelFamily]:
        return self._by_key.get(canonical(name))

    def resolve(self, name: str) -> ModelSpec:
        family = self.find(name)
        if family is None:
            raise model_not_found(name)
        return ModelSpec(name, family)

    def names(self) -> List[str]:
        return list(self._names)

    def items(self) -> List[Tuple[str, ModelFamily]]:
        """(public name, family) in table order."""
        return list(self._names.items())

    def configured_names(self) -> List[str]:
        """The names config keys gave (the seed's keys, ``models``): those a gpts.json name may not
        reuse. A built-in name it reuses is the GPT's (GPTs resolve first), so old configs still start."""
        return list(self._configured)

    def is_explicit(self, name: str) -> bool:
        """Configured by the operator (config.json), not only a built-in default."""
        return name in self._explicit

    def covers(self, slug: str) -> bool:
        """A name or slug of the table, in any spelling: an account's slug it needs not list again."""
        return canonical(slug) in self._covered


def canonical(name: str) -> str:
    """Dotted and dashed spellings are one name (``gpt-4.1`` = ``gpt-4-1``)."""
    return name.strip().replace(".", "-")


def _entries(settings: Settings) -> List[_Names]:
    operator = dict(settings.models)
    entries = []
    for name, default in DEFAULT_MODELS.items():
        override = operator.pop(name, {})
        if override is None:
            continue  # the operator removed it
        entries.append(_entry(name, {**default, **_checked(name, override)}, settings, bool(override)))
    for name, value in operator.items():
        if value is None:
            continue
        value = _checked(name, value)
        if "slug" not in value:
            raise ConfigError(f"config key models.{name}: a new model needs a \"slug\"")
        entries.append(_entry(name, value, settings, True))
    return entries


def _entry(name: str, data: Mapping[str, Any], settings: Settings, overridden: bool) -> _Names:
    key = data.get("aliases_key", "")
    family = _family(name, data, key)
    if key:
        value = getattr(settings, key)
        default = next(f.default for f in dataclasses.fields(Settings) if f.name == key)
        names = _aliases(value) + [a for a in _alias_list(name, data) if a not in _aliases(value)]
        return _Names(family, names, key, True, overridden or value != default)
    return _Names(family, [name] + _alias_list(name, data), f"models.{name}", overridden, overridden)


def _family(name: str, data: Mapping[str, Any], settings_key: str) -> ModelFamily:
    return ModelFamily(
        family=name, slug=data["slug"].strip(), settings_key=settings_key,
        tokenizer=data.get("tokenizer", "o200k_base"), reasoning=bool(data.get("reasoning", False)),
        thinking=bool(data.get("thinking", False)), hints=tuple(data.get("hints", ())),
        thinking_effort=data.get("thinking_effort"),
    )


def _checked(name: str, value: Any) -> Dict[str, Any]:
    """One config.json entry, its fields type-checked; errors name the key."""
    where = f"models.{name}"
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key {where}: expected an object (or null to remove it), got {value!r}")
    unknown = sorted(set(value) - set(ENTRY_FIELDS))
    if unknown:
        raise ConfigError(f"config key {where}: unknown field {unknown[0]!r}; known: {', '.join(ENTRY_FIELDS)}")
    if "slug" in value and (not isinstance(value["slug"], str) or not value["slug"].strip()):
        raise ConfigError(f"config key {where}.slug: expected a non-empty string, got {value['slug']!r}")
    for flag in ("thinking", "reasoning"):
        if flag in value and not isinstance(value[flag], bool):
            raise ConfigError(f"config key {where}.{flag}: expected true or false, got {value[flag]!r}")
    _check_choice(where, value, "tokenizer", TOKENIZERS)
    _check_choice(where, value, "thinking_effort", THINKING_EFFORTS + (None,))
    for key in ("hints", "aliases"):
        if key in value and not _is_string_list(value[key]):
            raise ConfigError(f"config key {where}.{key}: expected a list of strings, got {value[key]!r}")
    return dict(value)


def _check_choice(where: str, value: Mapping[str, Any], key: str, choices: Tuple[Any, ...]) -> None:
    if key in value and value[key] not in choices:
        shown = ", ".join(str(choice) for choice in choices if choice is not None)
        raise ConfigError(f"config key {where}.{key}: must be one of {shown}, got {value[key]!r}")


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) and item.strip() for item in value)


def _alias_list(name: str, data: Mapping[str, Any]) -> List[str]:
    return [alias.strip() for alias in data.get("aliases", ()) if alias.strip() != name]


def _aliases(value: str) -> List[str]:
    return [alias.strip() for alias in value.split(",") if alias.strip()]
