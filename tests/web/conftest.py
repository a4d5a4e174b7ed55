"""Fixtures of the dashboard's HTTP-level tests: an app on a fresh database (each backend), a user, a client that
is logged in, a pipeline config file, and cheap password hashes (argon2 with the least work: these tests check
the flow, not the hash's strength). Constants and helpers are in weblib.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.testclient import TestClient
from weblib import PASSWORD, SECRET, SLEEPER, USER, login

from runtracker.settings.web import WebSettings
from runtracker.web import passwords
from runtracker.web.app import create_app


@pytest.fixture(autouse=True)
def cheap_hashes() -> Iterator[None]:
    passwords.set_hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    yield
    passwords.set_hasher(None)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """nikki and sleeper have a command (so a Start button); `quiet` is configured with none."""
    path = tmp_path / "runtracker.toml"
    sleeper = ", ".join(f'"{part}"' for part in SLEEPER)
    path.write_text(f'[pipelines.nikki]\ncommand = [{sleeper}]\n\n[pipelines.sleeper]\ncommand = [{sleeper}]\n\n'
                    '[pipelines.quiet]\ntimeout = "1h"\n')
    return path


@pytest.fixture
def app(db_url: str, config_file: Path) -> Iterator[Starlette]:
    app = create_app(WebSettings(secret=SECRET, db=db_url, config_path=str(config_file)))
    app.state.web.auth.add_user(USER, passwords.hash_password(PASSWORD))
    try:
        yield app
    finally:
        app.state.web.store.close()


@pytest.fixture
def anon(app: Starlette) -> TestClient:
    """A client that is not logged in and does not follow redirects."""
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def client(app: Starlette) -> TestClient:
    """A client logged in as alice (redirects not followed)."""
    client = TestClient(app, follow_redirects=False)
    response = login(client, USER, PASSWORD)
    assert response.status_code == 303, response.text
    return client
