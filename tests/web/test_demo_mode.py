"""Demo mode leaves no credential a real server accepts: its user is demo-only, and a server not in demo mode
refuses it (login and session) and says so at startup."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient
from weblib import SECRET, login

from helpers import open_fresh
from runtracker.settings.web import DEMO_PASSWORD, DEMO_USER, WebSettings
from runtracker.storage.auth import Auth
from runtracker.web import passwords
from runtracker.web.app import create_app


def _app(db_url: str, demo: bool):
    # One secret for both: what refuses the demo user here is the user's mark, not a changed secret.
    return create_app(WebSettings(secret=SECRET, db=db_url, demo=demo))


def _add_users(db_url: str, users: dict[str, str]) -> None:
    """Users added as `runtracker user add` (or a version before demo-only users) adds them."""
    store = open_fresh(db_url)
    for name, password in users.items():
        Auth(store).add_user(name, passwords.hash_password(password))
    store.close()


def test_a_real_server_refuses_the_demo_user_that_demo_mode_left_and_warns(db_url, caplog):
    """serve --demo's app makes demo/demo; a non-demo app on the same database logs a warning at startup,
    refuses the login (401) and the demo session's cookie."""
    demo = _app(db_url, demo=True)
    try:
        browser = TestClient(demo, follow_redirects=False)
        assert login(browser, DEMO_USER, DEMO_PASSWORD).status_code == 303
        assert browser.get("/").status_code == 200
        cookie = browser.cookies.get("runtracker_session")
    finally:
        demo.state.web.store.close()
    with caplog.at_level(logging.WARNING, logger="runtracker.web"):
        real = _app(db_url, demo=False)
    try:
        assert any("made by demo mode" in r.getMessage() and "runtracker user remove demo" in r.getMessage()
                   for r in caplog.records), caplog.text
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="runtracker.web"):
            refused = login(TestClient(real, follow_redirects=False), DEMO_USER, DEMO_PASSWORD)
        assert refused.status_code == 401 and "demo credentials work only in demo mode" in caplog.text
        replayed = TestClient(real, follow_redirects=False, cookies={"runtracker_session": cookie})
        assert replayed.get("/").status_code == 303 and replayed.get("/api/runs").status_code == 401
    finally:
        real.state.web.store.close()


def test_a_real_server_refuses_demo_demo_made_before_demo_only_users(db_url, caplog):
    """A user demo with the password demo that is not marked (an older version's demo mode, or by hand) is
    refused and warned of all the same; a real user logs in as before and is not warned of."""
    _add_users(db_url, {DEMO_USER: DEMO_PASSWORD, "alice": "correct horse battery"})
    with caplog.at_level(logging.WARNING, logger="runtracker.web"):
        real = _app(db_url, demo=False)
    try:
        warned = [r.getMessage() for r in caplog.records if "made by demo mode" in r.getMessage()]
        assert len(warned) == 1 and "'demo'" in warned[0]
        assert login(TestClient(real, follow_redirects=False), DEMO_USER, DEMO_PASSWORD).status_code == 401
        assert login(TestClient(real, follow_redirects=False), "alice", "correct horse battery").status_code == 303
    finally:
        real.state.web.store.close()


@pytest.mark.parametrize("demo", [True, False])
def test_a_user_demo_with_a_real_password_is_a_real_user(db_url, caplog, demo):
    """The name alone is not refused: an operator's user demo with a password of its own logs in, unwarned."""
    _add_users(db_url, {DEMO_USER: "a real password"})
    with caplog.at_level(logging.WARNING, logger="runtracker.web"):
        app = _app(db_url, demo=demo)
    try:
        assert "made by demo mode" not in caplog.text
        assert login(TestClient(app, follow_redirects=False), DEMO_USER, "a real password").status_code == 303
    finally:
        app.state.web.store.close()
