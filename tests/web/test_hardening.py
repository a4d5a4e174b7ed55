"""Hardening against a hostile client and a careless operator (issue 20): the login limiter, ids out of range,
headers on every answer, caching, body limits, bounded pages, the forwarded address and the session secret."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from weblib import PASSWORD, SECRET, USER, login

from runtracker.settings.web import WebSettings
from runtracker.web.app import create_app


def test_successful_logins_do_not_count_against_the_login_limit(app):
    """An office behind one address logs in many times a minute; only failures count (five, then 429)."""
    office = TestClient(app, follow_redirects=False, client=("10.0.0.9", 1234))
    for _ in range(8):
        assert login(office, USER, PASSWORD).status_code == 303
        office.cookies.clear()
    for _ in range(5):
        assert login(office, USER, "wrong password").status_code == 401
    assert login(office, USER, PASSWORD).status_code == 429


TOO_LARGE = str(2**63)
SECURITY = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")


@pytest.mark.parametrize("path", [f"/run/{TOO_LARGE}", f"/errors/{TOO_LARGE}", f"/api/runs/{TOO_LARGE}",
                                  f"/run/{10**40}", f"/errors?after=2026-01-01T00:00:00.000Z~{TOO_LARGE}",
                                  f"/api/errors?after=2026-01-01T00:00:00.000Z~1~{TOO_LARGE}"])
def test_ids_past_64_bits_in_a_path_or_cursor_are_404_or_400_not_500(client, path):
    """An id of 2^63 or more cannot be stored: a path is 404, a cursor 400 (it was a 500 on SQLite)."""
    response = client.get(path)
    assert response.status_code in (400, 404), response.text
    assert response.status_code == (400 if "after=" in path else 404)


def test_ingest_ids_past_64_bits_are_404(app):
    """The ingest API's run and step ids too."""
    from ingestlib import auth, write_key

    http = TestClient(app)
    key = write_key(app)
    assert http.post(f"/api/runs/{TOO_LARGE}/end", json={"outcome": "success"}, headers=auth(key)).status_code == 404
    assert http.patch(f"/api/runs/1/steps/{TOO_LARGE}", json={"outcome": "success"},
                      headers=auth(key)).status_code == 404


def test_a_500_carries_the_security_headers(sqlite_url):
    """A request that fails inside the app (its SQLite store closed under it) still gets every security header."""
    app = create_app(WebSettings(secret=SECRET, db=sqlite_url))
    http = TestClient(app, raise_server_exceptions=False)
    app.state.web.store.close()
    response = http.get("/api/runs", headers={"Authorization": "Bearer some-key"})
    assert response.status_code == 500
    assert all(name in response.headers for name in SECURITY), response.headers


@pytest.mark.parametrize("path", ["/", "/pipeline/nikki", "/errors", "/api/runs", "/api/pipelines", "/metrics",
                                  "/login"])
def test_pages_and_api_answers_are_never_cached(client, path):
    """What a logged-in user sees carries Cache-Control: no-store (back after logout, shared proxies)."""
    response = client.get(path)
    assert response.status_code in (200, 303) and response.headers["cache-control"] == "no-store"


def test_static_files_may_be_cached(anon):
    """The stylesheet is the same for everyone: not no-store."""
    response = anon.get("/static/app.css")
    assert response.status_code == 200 and "no-store" not in response.headers.get("cache-control", "")
