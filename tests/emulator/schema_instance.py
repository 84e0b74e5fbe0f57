"""A small, deterministic JSON-Schema instance synthesizer: what the emulated model "fills in".

Tool arguments and `json_schema` answers are built from the schema the proxy put in the prompt,
so a test knows exactly what the model will say. It covers what OpenAI clients send: types (a
list of types: the first that is not "null"), `required` / `properties`, `enum`, `const`,
`default`, `examples` (in that order), `items` with `minItems`, nested objects, `anyOf` / `oneOf` (first branch),
`allOf` (branches merged), and `$ref` into `$defs` / `definitions` as pydantic emits them.
Objects fill every required property, or the first property when none is required; strings
are "x" (repeated up to `minLength`), integers 1 and numbers 1.5 (moved into
`minimum`/`maximum`), booleans true, arrays empty unless `minItems` asks for more.
"""
from __future__ import annotations

from typing import Any

MAX_DEPTH = 8  # a recursive $ref (a tree node holding nodes) stops here with an empty object


def instance(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A value valid against `schema` (`root` is the document its `$ref`s point into)."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return "x"  # `true` / `{}`-like schemas accept anything
    if "$ref" in schema:
        return instance(_resolve(root, schema["$ref"]), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    if schema.get("examples"):
        return schema["examples"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return instance(schema[key][0], root, depth + 1)
    if schema.get("allOf"):
        return _merged([instance(part, root, depth + 1) for part in schema["allOf"]])
    return _of_type(_type_of(schema), schema, root, depth)


def _of_type(kind: str, schema: dict, root: Any, depth: int) -> Any:
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        count = schema.get("minItems", 0)
        return [instance(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    if kind == "integer":
        return _bounded(1, schema)
    if kind == "number":
        return _bounded(1.5, schema)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "x" * max(1, schema.get("minLength", 1))


def _object(schema: dict, root: Any, depth: int) -> dict:
    if depth >= MAX_DEPTH:
        return {}
    properties = schema.get("properties") or {}
    names = list(schema.get("required") or list(properties)[:1])
    return {name: instance(properties.get(name, {}), root, depth + 1) for name in names}


def _type_of(schema: dict) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else ("array" if "items" in schema else "string")
    return kind


def _bounded(value: float, schema: dict) -> float:
    if "minimum" in schema:
        value = max(value, schema["minimum"])
    if "maximum" in schema:
        value = min(value, schema["maximum"])
    return value


def _merged(values: list) -> Any:
    if all(isinstance(value, dict) for value in values):
        return {key: item for value in values for key, item in value.items()}
    return values[0]


def _resolve(root: Any, ref: str) -> Any:
    """`#/$defs/Name`-style local references (JSON Pointer, with ~0 / ~1 escapes)."""
    if not ref.startswith("#"):
        return {}
    target = root
    for token in filter(None, ref[1:].split("/")):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(target, list) and token.isdigit() and int(token) < len(target):
            target = target[int(token)]
        elif isinstance(target, dict) and token in target:
            target = target[token]
        else:
            return {}
    return target
