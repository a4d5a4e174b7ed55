"""Constants and helpers of the dashboard's HTTP-level tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import re
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.testclient import TestClient

from runtracker.storage.auth import START
from runtracker.web import passwords

SECRET = "a-test-secret-of-more-than-32-characters"
USER = "alice"
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# A command that runs until the test ends it (the Start button's tests).
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def csrf_token(client: TestClient, path: str = "/login") -> str:
    match = CSRF.search(client.get(path).text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: TestClient, user: str, password: str, next_path: str = "/") -> Any:
    token = csrf_token(client)
    return client.post("/login", data={"username": user, "password": password, "csrf_token": token,
                                       "next": next_path})


def api_key(app: Starlette, name: str = "ci", start: tuple[str, ...] = ()) -> str:
    """A new API key: read-only, or allowed to start the pipelines `start` names (or matches)."""
    key = passwords.new_api_key()
    key_id = app.state.web.auth.add_api_key(name, passwords.key_hash(key))
    if start:
        app.state.web.auth.set_scope(key_id, START, start)
    return key
