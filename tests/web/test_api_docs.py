"""/docs/api: the OpenAPI description (openapi.json) as a page, made on the server: every path and method, its
parameters, body, responses and authentication; the file's text escaped; no login needed, as for the JSON."""

from __future__ import annotations

import json
import re

from runtracker.web import apidocs


def description() -> dict:
    return json.loads(apidocs.OPENAPI.read_text(encoding="utf-8"))


def test_every_path_and_method_of_openapi_json_is_on_the_page(anon):
    """Each operation of the file has its section, with its summary, parameters, responses and authentication."""
    doc = description()
    html = anon.get("/docs/api").text
    shown = set(re.findall(r'data-testid="api-operation" data-path="([^"]+)" data-method="([^"]+)"', html))
    expected = {(path, method.upper()) for path, item in doc["paths"].items() for method in item
                if method in apidocs.METHODS}
    assert shown == expected and len(expected) >= 10
    for path, item in doc["paths"].items():
        for method, op in item.items():
            section = re.search(rf'data-path="{re.escape(path)}" data-method="{method.upper()}">(.*?)</section>',
                                html, re.S).group(1)
            assert len(re.findall(r'data-testid="api-response"', section)) == len(op["responses"])
            for status in op["responses"]:
                assert f"<code>{status}</code>" in section
            for parameter in op.get("parameters", []):
                name = apidocs.Spec(doc).follow(parameter)["name"]
                assert f"<td data-label=\"name\"><code>{name}</code></td>" in section
            assert "Authorization: Bearer KEY" in section and "X-API-Key: KEY" in section
            if "requestBody" in op:
                assert "<h4>Request body" in section


def test_the_schemas_are_listed_and_linked_from_where_they_are_used(anon):
    html = anon.get("/docs/api").text
    for name in description()["components"]["schemas"]:
        assert f'id="schema-{name}"' in html
    assert '<a href="#schema-RunOpen"><code>RunOpen</code></a>' in html
    assert "<code>runtracker user key-add NAME --write PIPELINE</code>" in html  # `code` in a description


def test_the_api_docs_need_no_login_and_the_json_stays_where_it_was(anon, client):
    """No login (it is documentation, as the JSON is); logged in, the nav shows it as the current page."""
    assert anon.get("/docs/api").status_code == 200
    assert anon.get("/api/openapi.json").json() == description()
    assert '<a href="/docs/api" aria-current="page">API</a>' in client.get("/docs/api").text


def test_the_page_loads_nothing_from_elsewhere_and_runs_no_script_of_its_own(anon):
    response = anon.get("/docs/api")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert re.findall(r'<script[^>]*>', response.text) == ['<script src="/static/app.js" defer>']
    assert not re.search(r'(src|href)="(https?:)?//', response.text)


HOSTILE = '<script>alert("x")</script>'


def test_hostile_text_in_the_description_is_escaped(anon, tmp_path, monkeypatch):
    """Every text of the file (title, descriptions, paths, names, examples, schema names) is shown as text."""
    doc = {
        "openapi": "3.1.0", "info": {"title": HOSTILE, "version": HOSTILE, "description": f"`{HOSTILE}` {HOSTILE}"},
        "security": [{"evil": []}],
        "components": {"securitySchemes": {"evil": {"type": "apiKey", "in": "header", "name": HOSTILE}},
                       "schemas": {"Evil<b>": {"type": "object", "properties": {HOSTILE: {"type": "string",
                                                                                            "description": HOSTILE}}}}},
        "paths": {f"/api/{HOSTILE}": {"post": {
            "summary": HOSTILE, "description": HOSTILE,
            "parameters": [{"name": HOSTILE, "in": "query", "description": HOSTILE, "schema": {"enum": [HOSTILE]}}],
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Evil<b>"},
                                                             "example": {"x": HOSTILE}}}},
            "responses": {"200": {"description": HOSTILE, "content": {"text/plain": {"example": HOSTILE}}}}}}},
    }
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setattr(apidocs, "OPENAPI", path)
    html = anon.get("/docs/api").text
    assert "<script>alert" not in html and "<b>" not in html
    assert html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") >= 10
    assert "<code>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</code>" in html  # a `code` span, escaped
