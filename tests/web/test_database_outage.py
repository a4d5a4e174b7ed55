"""The dashboard while its PostgreSQL database is away and when it comes back: 503 with a clear page (JSON under
/api/) and Retry-After, the security headers kept, the outage logged once and its end once, no tracebacks."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from weblib import PASSWORD, SECRET, USER, api_key, login

import pg_schemas
from helpers import wait_until
from runtracker.settings.web import WebSettings
from runtracker.web import passwords
from runtracker.web.app import create_app

sys.path.insert(0, str(Path(__file__).parent.parent / "storage"))
from tcp_proxy import Proxy  # noqa: E402


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def pg_app(proxy: Proxy, config_file: Path):
    url = pg_schemas.new_schema_url("outage_web")
    app = create_app(WebSettings(secret=SECRET, db=proxy.url(url), config_path=str(config_file)))
    app.state.web.auth.add_user(USER, passwords.hash_password(PASSWORD))
    try:
        yield app
    finally:
        app.state.web.store.close()
        pg_schemas.drop_schema_url(url)


def test_pages_and_api_answer_503_while_the_database_is_away_and_log_it_once(pg_app, proxy, caplog):
    """Server away: 503 + Retry-After + security headers on pages and API; one log line for the outage and
    one for its end, no traceback; pages answer 200 again once it is back."""
    client = TestClient(pg_app, follow_redirects=False, raise_server_exceptions=False)
    assert login(client, USER, PASSWORD).status_code == 303
    key = api_key(pg_app)
    assert client.get("/").status_code == 200
    caplog.set_level(logging.INFO)
    caplog.clear()
    proxy.reject()
    proxy.drop_all()
    for _ in range(3):
        page = client.get("/")
        assert page.status_code == 503, page.text
        assert page.headers["retry-after"] == "5" and page.headers["x-frame-options"] == "DENY"
        assert "content-security-policy" in page.headers and "text/html" in page.headers["content-type"]
        assert "The database is unreachable" in page.text
    answer = client.get("/api/runs", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json()["error"] == "database unavailable"
    assert answer.headers["x-content-type-options"] == "nosniff"
    proxy.forward()
    wait_until(lambda: client.get("/").status_code == 200, "the dashboard to answer again")
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    messages = [r.getMessage() for r in records]
    assert len([m for m in messages if "database is unreachable" in m]) == 1, messages
    assert len([m for m in messages if "database answers again" in m]) == 1, messages
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert len(records) == 2, messages
