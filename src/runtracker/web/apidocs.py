"""`/docs/api`: the OpenAPI description of the ingest API (`openapi.json`, served as JSON at /api/openapi.json)
as a page people read: each path and method, its parameters, request body, responses and authentication, and
the schemas they name. Made on the server from the same file (no script, nothing from another site: the CSP
allows neither); every text in it is the file's, escaped by the template as any stored text is.

Like the JSON, it needs no login: it is documentation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import Response

from .core import web_of

OPENAPI = Path(__file__).resolve().parent / "openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")
_CODE = re.compile(r"`([^`]+)`")


def code_spans(text: object) -> Markup:
    """A description's text, escaped, with its `backquoted` parts as <code>."""
    parts = _CODE.split(str(text or ""))
    return Markup("").join(Markup("<code>{}</code>").format(p) if i % 2 else escape(p) for i, p in enumerate(parts))


class Spec:
    """The description, with its `$ref`s followed (within the file only)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def follow(self, node: Any) -> Any:
        """The node a `{"$ref": "#/components/..."}` points to (followed again if it is a ref); others as they are."""
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 10:
            target: Any = self.doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target.get(part) if isinstance(target, dict) else None
            node, seen = target if target is not None else {}, seen + 1
        return node if node is not None else {}

    def type_text(self, schema: Any) -> dict[str, Any]:
        """A schema in a few words, and the component schema it names (for a link), if any."""
        if not isinstance(schema, dict):
            return {"text": "any", "ref": None}
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return {"text": ref.rsplit("/", 1)[-1], "ref": ref.rsplit("/", 1)[-1]}
        for key, joiner in (("oneOf", " or "), ("anyOf", " or "), ("allOf", " and ")):
            if isinstance(schema.get(key), list):
                kinds = [self.type_text(s) for s in schema[key]]
                return {"text": joiner.join(k["text"] for k in kinds), "ref": next((k["ref"] for k in kinds
                                                                                     if k["ref"]), None)}
        kind = schema.get("type", "any")
        text = " or ".join(str(k) for k in kind) if isinstance(kind, list) else str(kind)
        ref = None
        if "array" in (kind if isinstance(kind, list) else [kind]) and "items" in schema:
            item = self.type_text(schema["items"])
            text, ref = text.replace("array", f"array of {item['text']}"), item["ref"]
        if isinstance(schema.get("enum"), list):
            text += " (one of " + ", ".join(json.dumps(v) for v in schema["enum"]) + ")"
        limits = [f"{label} {schema[key]}" for key, label in (
            ("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"), ("maxLength", "length ≤")) if key in schema]
        if limits:
            text += " (" + ", ".join(limits) + ")"
        return {"text": text, "ref": ref}

    def parameter(self, node: Any) -> dict[str, Any]:
        p = self.follow(node)
        return {"name": p.get("name", "?"), "in": p.get("in", "?"), "required": bool(p.get("required")),
                "type": self.type_text(p.get("schema")), "description": p.get("description", "")}

    def content(self, content: Any) -> list[dict[str, Any]]:
        """Each media type of a body: its schema and its examples as indented JSON (or text)."""
        found = []
        for media, body in (content or {}).items():
            body = body if isinstance(body, dict) else {}
            examples = []
            if "example" in body:
                examples.append(("example", body["example"]))
            for name, example in (body.get("examples") or {}).items():
                examples.append((name, self.follow(example).get("value")))
            found.append({"media": media, "type": self.type_text(body.get("schema")),
                          "examples": [{"name": name, "text": value if isinstance(value, str) else
                                        json.dumps(value, indent=2, ensure_ascii=False)} for name, value in examples]})
        return found

    def security(self, requirements: Any) -> list[dict[str, Any]]:
        """Each way to authenticate (any one will do), as the security schemes describe it."""
        schemes = (self.doc.get("components") or {}).get("securitySchemes") or {}
        found = []
        for requirement in requirements or []:
            for name in requirement:
                scheme = self.follow(schemes.get(name, {}))
                if scheme.get("type") == "http":
                    how = f"Authorization: {str(scheme.get('scheme', '')).capitalize()} KEY"
                elif scheme.get("type") == "apiKey":
                    how = f"{scheme.get('name', '?')}: KEY ({scheme.get('in', 'header')})"
                else:
                    how = str(scheme.get("type", "?"))
                found.append({"name": name, "how": how, "description": scheme.get("description", "")})
        return found

    def operations(self) -> list[dict[str, Any]]:
        found = []
        default_security = self.doc.get("security")
        for path, item in (self.doc.get("paths") or {}).items():
            item = self.follow(item)
            shared = item.get("parameters", [])
            for method in METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                body = self.follow(op.get("requestBody")) if "requestBody" in op else None
                anchor = method + re.sub(r"[^A-Za-z0-9]+", "-", path).rstrip("-")
                found.append({
                    "path": path, "method": method.upper(), "id": anchor,
                    "summary": op.get("summary", ""), "description": op.get("description", ""),
                    "operation_id": op.get("operationId", ""),
                    "parameters": [self.parameter(p) for p in [*shared, *op.get("parameters", [])]],
                    "body": None if body is None else {"required": bool(body.get("required")),
                                                       "description": body.get("description", ""),
                                                       "content": self.content(body.get("content"))},
                    "responses": [{"status": status, "description": self.follow(r).get("description", ""),
                                   "content": self.content(self.follow(r).get("content")),
                                   "headers": sorted(self.follow(r).get("headers") or {})}
                                  for status, r in sorted((op.get("responses") or {}).items())],
                    "security": self.security(op.get("security", default_security)),
                })
        return found

    def schemas(self) -> list[dict[str, Any]]:
        found = []
        for name, schema in ((self.doc.get("components") or {}).get("schemas") or {}).items():
            schema = self.follow(schema)
            required = set(schema.get("required") or [])
            found.append({"name": name, "type": self.type_text(schema),
                          "description": schema.get("description", ""),
                          "closed": schema.get("additionalProperties") is False,
                          "properties": [{"name": prop, "required": prop in required, "type": self.type_text(p),
                                          "description": (p or {}).get("description", "")}
                                         for prop, p in (schema.get("properties") or {}).items()]})
        return found


def describe(doc: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of an OpenAPI description."""
    spec = Spec(doc)
    info = doc.get("info") or {}
    return {"title": info.get("title", "API"), "version": info.get("version", ""),
            "description": info.get("description", ""), "openapi": doc.get("openapi", ""),
            "security": spec.security(doc.get("security")), "operations": spec.operations(),
            "schemas": spec.schemas()}


def api_docs(request: Request) -> Response:
    web = web_of(request)
    doc = json.loads(OPENAPI.read_text(encoding="utf-8"))
    return web.render(request, "api_docs.html", {"api": describe(doc), "code_spans": code_spans},
                      user=web.user(request))
