"""Hardening against a hostile client and a careless operator (issue 20): the login limiter, ids out of range,
headers on every answer, caching, body limits, bounded pages, the forwarded address and the session secret."""

from __future__ import annotations

import json
import os
import sys

import pytest
from starlette.testclient import TestClient
from webdata import add_run
from weblib import PASSWORD, SECRET, USER, csrf_token, login

from helpers import wait_until
from runtracker.settings.web import DEMO_SECRET, SettingsError, WebSettings, session_secret
from runtracker.web import passwords
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


def test_a_one_megabyte_login_body_is_413(anon):
    """A login body past 4 KiB is refused by its size, before the form is parsed."""
    token = csrf_token(anon)
    response = anon.post("/login", data={"username": USER, "password": "x" * 1_000_000, "csrf_token": token})
    assert response.status_code == 413 and "larger than 4096 bytes" in response.text
    assert anon.get("/").status_code == 303  # not logged in


def test_a_multipart_login_is_415(anon):
    """No form has a file: a multipart login (which Starlette would spool to disk) is refused, 415."""
    token = csrf_token(anon)
    response = anon.post("/login", data={"username": USER, "password": PASSWORD, "csrf_token": token},
                         files={"upload": ("big.bin", b"\\0" * 1000)})
    assert response.status_code == 415 and "multipart/form-data" in response.text
    assert anon.get("/").status_code == 303  # not logged in


@pytest.mark.parametrize("path", ["/errors/clear", "/logout", "/pipeline/nikki/start"])
def test_every_form_route_caps_its_body_and_refuses_multipart(client, path):
    """Each form route: past 16 KiB 413, more than 32 fields 413, multipart 415; none of them acts."""
    token = csrf_token(client, "/errors/clear")
    big = client.post(path, data={"csrf_token": token, "q": "x" * 20_000, "confirm": "yes"})
    many = client.post(path, data={"csrf_token": token, **{f"f{i}": "1" for i in range(40)}})
    multipart = client.post(path, data={"csrf_token": token, "confirm": "yes"}, files={"f": ("a", b"a")})
    assert (big.status_code, many.status_code, multipart.status_code) == (413, 413, 415)
    assert client.get("/").status_code == 200  # still logged in: logout did not happen


def _deep_stats(depth: int = 200) -> dict:
    stats: dict = {}
    node = stats
    for i in range(depth):
        node["next"] = {"label": f"level {i} " + "x" * 200, "values": list(range(20))}
        node = node["next"]
    return stats


def test_a_deep_summary_makes_a_small_page_that_says_it_was_cut_with_the_whole_json_a_link_away(app, client):
    """A ~59 KB stats nested 200 deep (sent through the ingest API) was a 12 MB page; now under 200 KB, marked
    cut, and /run/<id>/summary.json answers the whole stored JSON."""
    from ingestlib import auth, write_key

    key = write_key(app)
    stats = _deep_stats()
    run_id = client.post("/api/runs", json={"pipeline": "nikki"}, headers=auth(key)).json()["run_id"]
    ended = client.post(f"/api/runs/{run_id}/end", json={"outcome": "success", "stats": stats}, headers=auth(key))
    assert ended.status_code == 200, ended.text
    stored = app.state.web.dash.run(run_id)["summary_json"]
    assert len(stored) > 50_000
    page = client.get(f"/run/{run_id}")
    assert page.status_code == 200 and len(page.content) < 200_000, len(page.content)
    assert 'data-testid="summary-cut"' in page.text and f'href="/run/{run_id}/summary.json"' in page.text
    raw = client.get(f"/run/{run_id}/summary.json")
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    assert raw.text == stored and raw.json() == json.loads(stored)


def test_a_small_summary_is_shown_whole_and_indented(app, client):
    """A summary within the bounds is shown as before, indented, not marked cut."""
    run_id = add_run(app.state.web.store, "nikki", 1, summary_json=json.dumps({"b": [1, 2], "a": {"c": "x"}}))
    page = client.get(f"/run/{run_id}")
    assert json.dumps({"a": {"c": "x"}, "b": [1, 2]}, indent=2).replace('"', "&#34;") in page.text
    assert "summary-cut" not in page.text


def test_the_raw_summary_needs_a_login(anon):
    """The raw JSON route is a page like the others: no session, a redirect to /login."""
    assert anon.get("/run/1/summary.json").status_code == 303


def _env_dump_app(tmp_path, db_url: str, **settings):
    """An app whose pipeline `envdump` writes the environment it got to a file, and a logged-in client."""
    dump = tmp_path / "env.json"
    script = (f"import json, os; f = open({str(dump) + '.tmp'!r}, 'w'); json.dump(dict(os.environ), f); "
              f"f.close(); os.replace({str(dump) + '.tmp'!r}, {str(dump)!r})")
    config = tmp_path / "envdump.toml"
    config.write_text(f"[pipelines.envdump]\ncommand = {json.dumps([sys.executable, '-c', script])}\n")
    app = create_app(WebSettings(secret=SECRET, db=db_url, config_path=str(config), **settings))
    app.state.web.auth.add_user(USER, passwords.hash_password(PASSWORD))
    client = TestClient(app, follow_redirects=False)
    assert login(client, USER, PASSWORD).status_code == 303
    return app, client, dump


@pytest.mark.subprocess
@pytest.mark.parametrize("pass_env", [(), ("APP_*",)])
def test_start_passes_a_documented_environment_never_the_web_secret(tmp_path, db_url, monkeypatch, pass_env):
    """A started pipeline gets PATH, the locale and RUNTRACKER_DB, not the server's web secret nor its other
    variables, unless `--pass-env` names them."""
    monkeypatch.setenv("RUNTRACKER_WEB_SECRET", "the-servers-secret-" + "s" * 20)
    monkeypatch.setenv("APP_TOKEN", "the-pipelines-token")
    monkeypatch.setenv("OTHER_SERVICE_PASSWORD", "not-for-pipelines")
    monkeypatch.setenv("LC_TIME", "C")
    app, client, dump = _env_dump_app(tmp_path, db_url, **({"pass_env": pass_env} if pass_env else {}))
    try:
        started = client.post("/pipeline/envdump/start", data={"csrf_token": csrf_token(client, "/")})
        assert started.status_code == 303, started.text
        got = json.loads(wait_until(lambda: dump.exists() and dump.read_text(), "the pipeline's environment"))
    finally:
        app.state.web.store.close()
    assert "RUNTRACKER_WEB_SECRET" not in got and "OTHER_SERVICE_PASSWORD" not in got
    assert got["PATH"] == os.environ["PATH"] and got["LC_TIME"] == "C" and got["RUNTRACKER_DB"] == db_url
    assert got["RUNTRACKER_STARTED_BY"] == "dashboard:alice"
    assert ("APP_TOKEN" in got) == bool(pass_env)


@pytest.mark.parametrize("secret", ["a" * 32, "ab" * 20, "0123456780123456781234567812345678", DEMO_SECRET])
def test_a_trivial_or_the_demo_secret_is_refused_outside_demo_mode(secret):
    """Outside demo mode, the demo's public secret and secrets of few distinct characters are refused with a
    message that names the variable; demo mode takes them."""
    with pytest.raises(SettingsError, match=r"RUNTRACKER_WEB_SECRET is too easy to guess"):
        session_secret(False, {"RUNTRACKER_WEB_SECRET": secret})
    assert session_secret(True, {"RUNTRACKER_WEB_SECRET": secret}) == secret


def test_config_show_warns_of_the_demo_secret(tmp_path):
    """`config show` says what `serve` would refuse (they share `session_secret`)."""
    from click.testing import CliRunner

    from runtracker.cli import cli

    env = {"RUNTRACKER_WEB_SECRET": DEMO_SECRET, "RUNTRACKER_DB": f"sqlite:///{tmp_path / 'a.sqlite'}"}
    shown = CliRunner().invoke(cli, ["config", "show", "--json"], env=env)
    assert shown.exit_code == 0 and "demo mode's public secret" in shown.output
