"""The README's model and configuration tables say what the code does (issue 14: "the README's model
and feature tables match the code"): a name added to the model table, or a key added to config.json,
without its README row fails here."""
from __future__ import annotations

import json
import re
from pathlib import Path

from backend_to_api.model_defaults import DEFAULT_MODELS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(heading: str) -> str:
    start = README.index(heading)
    end = README.find("\n#", start + len(heading))
    return README[start:end if end >= 0 else len(README)]


def test_the_model_table_lists_every_built_in_name_and_no_other():
    rows = [line for line in section("### Models").splitlines() if line.startswith("| `")]
    listed = set()
    for row in rows:
        names_cell = row.split("|")[1]
        names_cell = re.sub(r"\([^)]*\)", "", names_cell)  # "(gpt_3_5_new_name)": the config key, not a name
        listed.update(re.findall(r"`([^`]+)`", names_cell))
    assert listed == set(DEFAULT_MODELS)


def test_every_config_key_has_a_row_in_the_configuration_table():
    config = json.loads((ROOT / "config.json").read_text(encoding="utf-8"))
    table = section("## Configuration")
    missing = []
    for key, value in config.items():
        keys = [f"{key}.{inner}" for inner in value] if isinstance(value, dict) and key != "models" else [key]
        missing += [name for name in keys if f"| `{name}`" not in table]
    assert missing == []
