"""Helpers of the ingest API's tests: API keys with a write scope, a client's headers, and a small validator of
the JSON Schema subset openapi.json uses (type, enum, required, properties, additionalProperties, items, oneOf,
minLength, minimum, maximum, $ref): enough to check its examples, with no dependency."""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette

from runtracker.web import passwords
from runtracker.web.ingest import OPENAPI


def write_key(app: Starlette, name: str = "node", write: tuple[str, ...] = ("*",)) -> str:
    """A new API key that may write runs of these pipelines (none: read-only)."""
    web = app.state.web
    key = passwords.new_api_key()
    key_id = web.auth.add_api_key(name, passwords.key_hash(key))
    web.auth.set_write_scope(key_id, write)
    return key


def auth(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def openapi() -> dict[str, Any]:
    return json.loads(OPENAPI.read_text(encoding="utf-8"))


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def problems(value: Any, schema: dict[str, Any], doc: dict[str, Any], where: str = "$") -> list[str]:
    """What is wrong with `value` under `schema` (empty: it validates)."""
    if "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        return problems(value, node, doc, where)
    if "oneOf" in schema:
        matching = [s for s in schema["oneOf"] if not problems(value, s, doc, where)]
        return [] if len(matching) == 1 else [f"{where}: matches {len(matching)} of oneOf"]
    found: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is(value, t) for t in names):
            return [f"{where}: {value!r} is not {names}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        found.append(f"{where}: shorter than {schema['minLength']}")
    if _is(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{where}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{where}: above {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        found += [f"{where}: `{k}` is required" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if k in properties:
                found += problems(v, properties[k], doc, f"{where}.{k}")
            elif schema.get("additionalProperties") is False:
                found.append(f"{where}: `{k}` is not allowed")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += problems(item, schema["items"], doc, f"{where}[{i}]")
    return found
