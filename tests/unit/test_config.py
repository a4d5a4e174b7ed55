"""Settings (runtracker.settings.values): the database location, retention and heartbeat timing, from the argument,
else the environment, else a default. Wrong values are in test_settings_refused.py."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from runtracker.base.clock import iso, to_ms
from runtracker.settings import values as config

ENV = ("RUNTRACKER_DB", "RUNTRACKER_RETENTION_DAYS", "RUNTRACKER_HEARTBEAT_S", "RUNTRACKER_HEARTBEAT_TIMEOUT_S",
       "RUNTRACKER_OWNERLESS_TIMEOUT")


@pytest.fixture(autouse=True)
def _no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    config.forget_warnings()


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run in an empty directory of the test's own; relative paths resolve against it."""
    monkeypatch.chdir(tmp_path)
    return os.getcwd()


PG = "postgresql://rt@db.example/runs?sslmode=require"


@pytest.mark.parametrize("db, env, scheme, target", [
    pytest.param("runs.sqlite", None, "sqlite", "{cwd}/runs.sqlite", id="plain-relative-path"),
    pytest.param("/srv/rt/runs.sqlite", None, "sqlite", "/srv/rt/runs.sqlite", id="plain-absolute-path"),
    pytest.param(Path("runs.sqlite"), None, "sqlite", "{cwd}/runs.sqlite", id="pathlib-path"),
    pytest.param("sqlite:///rel/runs.sqlite", None, "sqlite", "{cwd}/rel/runs.sqlite", id="sqlite-url-relative"),
    pytest.param("sqlite:////srv/rt/runs.sqlite", None, "sqlite", "/srv/rt/runs.sqlite", id="sqlite-url-absolute"),
    pytest.param("sqlite://runs.sqlite", None, "sqlite", "{cwd}/runs.sqlite", id="sqlite-url-two-slashes"),
    pytest.param("sqlite:///", None, "sqlite", "{cwd}/data/dashboard.sqlite", id="sqlite-url-without-a-path"),
    pytest.param("sqlite:", None, "sqlite", "{cwd}/data/dashboard.sqlite", id="sqlite-scheme-alone"),
    pytest.param("sqlite:runs.sqlite", None, "sqlite", "{cwd}/runs.sqlite", id="sqlite-scheme-and-a-path"),
    pytest.param("backup:2026.sqlite", None, "sqlite", "{cwd}/backup:2026.sqlite", id="a-colon-in-a-file-name"),
    pytest.param("./mysql://x", None, "sqlite", "{cwd}/mysql:/x", id="dot-slash-is-always-a-path"),
    pytest.param(PG, None, "postgresql", PG, id="postgresql-url-as-it-is"),
    pytest.param("postgres://rt@db.example/runs", None, "postgresql", "postgres://rt@db.example/runs",
                 id="postgres-scheme"),
    pytest.param("postgresql+psycopg://rt@db.example/runs", None, "postgresql", "postgresql://rt@db.example/runs",
                 id="sqlalchemy-style-url-made-plain"),
    pytest.param(None, "sqlite:///env.sqlite", "sqlite", "{cwd}/env.sqlite", id="environment"),
    pytest.param(None, PG, "postgresql", PG, id="environment-postgresql"),
    pytest.param("given.sqlite", "env.sqlite", "sqlite", "{cwd}/given.sqlite", id="argument-wins-over-environment"),
    pytest.param("", "env.sqlite", "sqlite", "{cwd}/env.sqlite", id="empty-argument-means-environment"),
    pytest.param(None, None, "sqlite", "{cwd}/data/dashboard.sqlite", id="default"),
    pytest.param(None, "", "sqlite", "{cwd}/data/dashboard.sqlite", id="empty-environment-means-default"),
])
def test_resolve_db_from_argument_then_environment_then_default(db, env, scheme, target, cwd, monkeypatch):
    """A path or sqlite:/// URL is an absolute SQLite file; postgres URLs are libpq DSNs; else $RUNTRACKER_DB,
    else ./data/dashboard.sqlite."""
    if env is not None:
        monkeypatch.setenv("RUNTRACKER_DB", env)
    assert config.resolve_db(db) == config.DatabaseURL(scheme, target.format(cwd=cwd))


@pytest.mark.parametrize("db, text", [
    pytest.param("sqlite:////srv/rt/runs.sqlite", "sqlite:////srv/rt/runs.sqlite", id="sqlite"),
    pytest.param("/srv/rt/runs.sqlite", "sqlite:////srv/rt/runs.sqlite", id="plain-path"),
    pytest.param("postgresql+psycopg://rt@db/runs", "postgresql://rt@db/runs", id="postgresql"),
])
def test_a_resolved_database_prints_as_a_url(db, text):
    """str() of a resolved database is a URL that resolves to the same database."""
    assert str(config.resolve_db(db)) == text
    assert config.resolve_db(text) == config.resolve_db(db)


def test_resolve_db_of_something_that_is_no_path_is_a_type_error():
    """A number is no database: a TypeError naming its type."""
    with pytest.raises(TypeError, match="db must be a path or URL, not int"):
        config.resolve_db(5)


@pytest.mark.parametrize("value, env, days", [
    pytest.param(None, None, 3, id="default"),
    pytest.param(None, "7", 7, id="environment"),
    pytest.param(None, "0", 0, id="zero-switches-retention-off"),
    pytest.param(None, "", 3, id="empty-environment-is-default"),
    pytest.param(None, " 14 ", 14, id="environment-with-spaces"),
    pytest.param(10, "7", 10, id="argument-wins"),
    pytest.param("5", None, 5, id="argument-as-text"),
    pytest.param(0, "7", 0, id="argument-zero"),
    pytest.param(7.0, None, 7, id="float-argument-without-a-fraction"),
    pytest.param(36_500, None, 36_500, id="the-maximum"),
])
def test_retention_days_from_argument_then_environment_then_default(value, env, days, monkeypatch, caplog):
    """Days of finished runs to keep: argument, else $RUNTRACKER_RETENTION_DAYS, else 3; no warning."""
    caplog.set_level(logging.WARNING, logger="runtracker")
    if env is not None:
        monkeypatch.setenv("RUNTRACKER_RETENTION_DAYS", env)
    assert config.retention_days(value) == days
    assert [r for r in caplog.records if r.name == "runtracker"] == []


NOW = to_ms("2026-11-26T12:00:00.000Z")


@pytest.mark.parametrize("days, cutoff", [
    pytest.param(3, "2026-11-23T12:00:00.000Z", id="three-days"),
    pytest.param(1, "2026-11-25T12:00:00.000Z", id="one-day"),
    pytest.param(400, "2025-10-22T12:00:00.000Z", id="over-a-year"),
    pytest.param(0, None, id="zero-is-off"),
    pytest.param(-1, None, id="negative-is-off"),
])
def test_retention_cutoff_is_that_many_days_before_now(days, cutoff, monkeypatch):
    """The started_at before which finished runs are deleted, in our format; None when retention is off."""
    monkeypatch.setattr(config, "now_ms", lambda: NOW)
    assert config.retention_cutoff(days) == cutoff
    if cutoff is not None:
        assert cutoff == iso(NOW - days * 86_400_000)


SETTINGS = [
    pytest.param(config.heartbeat_interval_s, "RUNTRACKER_HEARTBEAT_S", 10.0, id="interval"),
    pytest.param(config.heartbeat_timeout_s, "RUNTRACKER_HEARTBEAT_TIMEOUT_S", 60.0, id="timeout"),
]
DEFAULT = object()


@pytest.mark.parametrize("setting, env_name, default", SETTINGS)
@pytest.mark.parametrize("value, env, expected", [
    pytest.param(None, None, DEFAULT, id="default"),
    pytest.param(2.5, None, 2.5, id="argument"),
    pytest.param("3", None, 3.0, id="argument-as-text"),
    pytest.param(0.1, None, 0.1, id="small-but-allowed"),
    pytest.param(None, "2.5", 2.5, id="environment"),
    pytest.param(5, "2.5", 5.0, id="argument-wins"),
    pytest.param(None, "", DEFAULT, id="empty-environment"),
    pytest.param(None, "3600", 3600.0, id="an-hour"),
])
def test_heartbeat_settings_from_argument_then_environment_then_default(setting, env_name, default, value, env,
                                                                       expected, monkeypatch, caplog):
    """Heartbeat interval and timeout: argument, else the environment, else the default; no warning."""
    caplog.set_level(logging.WARNING, logger="runtracker")
    if env is not None:
        monkeypatch.setenv(env_name, env)
    assert setting(value) == (default if expected is DEFAULT else expected)
    assert [r for r in caplog.records if r.name == "runtracker"] == []
