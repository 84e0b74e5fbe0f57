"""The model table as data: built-in entries, config.json's ``models`` over them, the original's
``*_new_name`` keys, dotted names, config errors that name the key, and reasoning_effort's mapping."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from backend_to_api.errors import ApiError
from backend_to_api.gpts_file import gpt_names
from backend_to_api.models import ModelRegistry
from backend_to_api.settings import ConfigError, load_settings
from backend_to_api.translate.thinking import parse_reasoning_effort, thinking_fields

from .conftest import ROOT


def registry(tmp_path, config: dict, **env) -> ModelRegistry:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return ModelRegistry(load_settings({"CONFIG_FILE": str(path), **env}))


def test_the_defaults_cover_the_seed_and_today(tmp_path):
    table = registry(tmp_path, {})
    for name in ("gpt-3.5-turbo", "gpt-4-s", "gpt-4-mobile", "gpt-4o", "gpt-4o-mini", "o1-preview", "o1-mini",
                 "auto", "gpt-5", "gpt-5-thinking", "gpt-5-pro", "gpt-5-mini", "gpt-5-1", "gpt-5-2", "gpt-5-5",
                 "gpt-5-6", "gpt-5-6-thinking", "gpt-4.1", "o3", "o4-mini", "o4-mini-high"):
        assert name in table.names()
    assert table.resolve("gpt-3.5-turbo").family.tokenizer == "cl100k_base"
    assert table.resolve("o1-mini").family.reasoning is True and table.resolve("gpt-5").family.reasoning is False
    thinking = table.resolve("gpt-5-6-thinking").family
    assert (thinking.slug, thinking.hints, thinking.thinking) == ("auto", ("reason",), True)


@pytest.mark.parametrize("name,slug", [("gpt-5.2", "gpt-5-2"), ("gpt-5-2", "gpt-5-2"), ("gpt-4.1", "gpt-4-1"),
                                       ("gpt-4-1", "gpt-4-1"), ("gpt-3-5-turbo", "text-davinci-002-render-sha")])
def test_dots_and_dashes_are_one_name(tmp_path, name, slug):
    spec = registry(tmp_path, {}).resolve(name)
    assert (spec.name, spec.slug) == (name, slug)


def names_of(table, family: str) -> list:
    """The public names of one family (the original's ori_name), in table order."""
    return [name for name, spec in table.items() if spec.family == family]


def test_legacy_keys_work_as_before(tmp_path):
    table = registry(tmp_path, {"gpt_4_s_new_name": "gpt-4-s, dall-e-3 ,gpt-4", "gpt_4_o_new_name": "my-4o"})
    assert table.resolve("dall-e-3").slug == "gpt-4" and table.resolve("gpt-4").slug == "gpt-4"
    assert table.resolve("my-4o").slug == "gpt-4o" and names_of(table, "gpt-4o") == ["my-4o"]
    with pytest.raises(ApiError) as info:
        table.resolve("gpt-4o")  # renamed away, exactly as the original's key did
    assert info.value.status == 404 and info.value.code == "model_not_found"


def test_a_legacy_alias_wins_over_a_built_in_name(tmp_path):
    table = registry(tmp_path, {"gpt_4_o_new_name": "gpt-4o,gpt-5"})
    assert table.resolve("gpt-5").slug == "gpt-4o"  # an existing config keeps working


def test_operator_entries_extend_override_and_remove(tmp_path):
    table = registry(tmp_path, {"models": {
        "team-thinker": {"slug": "gpt-5-thinking", "aliases": ["tt"], "thinking": True, "thinking_effort": "max"},
        "gpt-5": {"thinking_effort": "extended"},
        "gpt-5-pro": None,
        "gpt-4o": {"hints": ["search"]},
    }})
    assert table.resolve("tt").family == table.resolve("team-thinker").family
    assert table.resolve("tt").family.thinking_effort == "max" and table.is_explicit("tt")
    assert table.resolve("gpt-5").family.thinking_effort == "extended" and table.resolve("gpt-5").slug == "gpt-5"
    assert "gpt-5-pro" not in table.names() and not table.is_explicit("o3")
    assert table.resolve("gpt-4o").family.hints == ("search",)  # a seed family keeps its legacy names
    assert names_of(table, "gpt-4o") == ["gpt-4o"]


def test_models_from_the_environment(tmp_path):
    table = registry(tmp_path, {}, MODELS='{"env-model": {"slug": "gpt-5-5"}}')
    assert table.resolve("env-model").slug == "gpt-5-5"


@pytest.mark.parametrize("models,fragment", [
    ({"new": {"aliases": ["x"]}}, "models.new: a new model needs a \"slug\""),
    ({"new": {"slug": ""}}, "models.new.slug"),
    ({"new": {"slug": "s", "tokenizer": "p50k_base"}}, "models.new.tokenizer"),
    ({"new": {"slug": "s", "thinking_effort": "high"}}, "models.new.thinking_effort"),
    ({"new": {"slug": "s", "thinking": "yes"}}, "models.new.thinking"),
    ({"new": {"slug": "s", "hints": "reason"}}, "models.new.hints"),
    ({"new": {"slug": "s", "colour": "red"}}, "unknown field 'colour'"),
    ({"new": "gpt-5"}, "models.new: expected an object"),
    ({"new": {"slug": "s", "aliases": ["gpt-4o"]}}, "model name 'gpt-4o' is already used"),
    ([1], "config key models"),
])
def test_bad_entries_name_the_key(tmp_path, models, fragment):
    with pytest.raises(ConfigError) as info:
        registry(tmp_path, {"models": models})
    assert fragment in str(info.value)


def test_a_bad_models_variable_stops_start_up_with_one_line(tmp_path):
    env = {**os.environ, "CONFIG_FILE": os.path.join(ROOT, "config.json"), "MODELS": '{"x": {"slug": 5}}'}
    result = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "models.x.slug" in lines[0]


@pytest.mark.parametrize("given,word", [("none", "standard"), ("minimal", "standard"), ("low", "standard"),
                                        ("medium", "extended"), ("high", "max"), ("xhigh", "max"), ("MAX", "max"),
                                        (None, None)])
def test_reasoning_effort_in_upstream_words(given, word):
    assert parse_reasoning_effort(given) == word


@pytest.mark.parametrize("given", ["highest", "", 2, True, ["high"]])
def test_other_efforts_are_400(given):
    with pytest.raises(ApiError) as info:
        parse_reasoning_effort(given)
    assert (info.value.status, info.value.param) == (400, "reasoning_effort")


def test_thinking_fields_per_model(tmp_path):
    table = registry(tmp_path, {})
    assert thinking_fields(table.find("gpt-4o"), "max") == {}
    assert thinking_fields(table.find("o3"), None) == {}
    assert thinking_fields(table.find("o3"), "extended") == {"thinking_effort": "extended"}
    assert thinking_fields(table.find("auto"), "standard") == {"thinking_effort": "standard"}
    assert thinking_fields(table.find("auto"), "max") == {"system_hints": ["reason"], "thinking_effort": "max"}
    assert thinking_fields(table.find("gpt-5-6-t-mini"), None) == {"system_hints": ["reason"]}


def test_a_gpt_may_reuse_a_built_in_name_but_not_a_configured_one(tmp_path):
    gpts = tmp_path / "gpts.json"
    gpts.write_text(json.dumps({"auto": {"id": "g-abc"}, "o3": {"id": "g-def"}}))
    path = tmp_path / "config.json"
    path.write_text("{}")
    settings = load_settings({"CONFIG_FILE": str(path), "GPTS_FILE": str(gpts)})
    assert gpt_names(settings, ModelRegistry(settings).configured_names()) == {"auto": "g-abc", "o3": "g-def"}
    gpts.write_text(json.dumps({"gpt-4o": {"id": "g-abc"}}))
    with pytest.raises(ConfigError, match="gpt-4o"):
        gpt_names(settings, ModelRegistry(settings).configured_names())
