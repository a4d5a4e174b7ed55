"""Wrong settings are refused out loud, never silently honoured: one warning naming the setting, where it came
from, the value and what is used instead, and the safe value; the constructor never raises."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from runtracker import RunTracker
from runtracker.settings import values as config
from runtracker.settings.configfile import ConfigError, load, parse
from runtracker.settings.pipelines import ExecSettings

ENV = ("RUNTRACKER_DB", "RUNTRACKER_RETENTION_DAYS", "RUNTRACKER_HEARTBEAT_S", "RUNTRACKER_HEARTBEAT_TIMEOUT_S",
       "RUNTRACKER_OWNERLESS_TIMEOUT", "RUNTRACKER_CONFIG")


@pytest.fixture(autouse=True)
def _no_settings_and_no_earlier_warnings(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    config.forget_warnings()
    caplog.set_level(logging.WARNING, logger="runtracker")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "runtracker" and r.levelno == logging.WARNING]


def _one_warning(caplog: pytest.LogCaptureFixture, *parts: str) -> str:
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert all(part in warnings[0] for part in parts), (parts, warnings[0])
    return warnings[0]


# -- retention: a wrong value deletes nothing ----------------------------------------------------------------
@pytest.mark.parametrize("value, env, shown", [
    pytest.param(None, "30d", "'30d'", id="env-30d-is-not-3-days"),
    pytest.param(None, "abc", "'abc'", id="env-nonsense"),
    pytest.param(None, "-2", "'-2'", id="env-negative"),
    pytest.param(None, "2.5", "'2.5'", id="env-fraction"),
    pytest.param(None, "1e8", "'1e8'", id="env-exponent"),
    pytest.param(None, "1000000", "'1000000'", id="env-past-the-maximum"),
    pytest.param(float("inf"), None, "inf", id="arg-infinity"),
    pytest.param(float("nan"), None, "nan", id="arg-nan"),
    pytest.param(10**6, None, "1000000", id="arg-past-the-maximum"),
    pytest.param(1e8, None, "100000000.0", id="arg-float-past-the-maximum"),
    pytest.param(-1, None, "-1", id="arg-negative"),
    pytest.param(2.9, None, "2.9", id="arg-fraction-not-truncated"),
    pytest.param("x", None, "'x'", id="arg-text"),
    pytest.param(True, None, "True", id="arg-bool"),
    pytest.param([3], None, "[3]", id="arg-list"),
])
def test_a_wrong_retention_keeps_every_run_with_one_warning(value, env, shown, monkeypatch, caplog):
    """Anything but a whole number of days from 0 to 36,500 keeps everything (0) and says so once."""
    if env is not None:
        monkeypatch.setenv("RUNTRACKER_RETENTION_DAYS", env)
    assert config.retention_days(value) == 0
    where = (f"RUNTRACKER_RETENTION_DAYS={shown} (environment variable)" if env is not None
             else f"retention_days={shown} (argument)")
    message = _one_warning(caplog, where, "whole number of days from 0 to 36,500")
    assert message.endswith("using 0 (every run is kept)")
    assert config.retention_cutoff(config.retention_days(value)) is None


# -- heartbeat interval and timeout ------------------------------------------------------------------------
@pytest.mark.parametrize("value, env", [
    pytest.param(None, "1e10", id="env-beyond-what-a-thread-can-wait"),
    pytest.param(None, "0.0001", id="env-a-busy-loop"),
    pytest.param(None, "3601", id="env-more-than-an-hour"),
    pytest.param(None, "0", id="env-zero"),
    pytest.param(None, "soon", id="env-nonsense"),
    pytest.param(1e10, None, id="arg-beyond-what-a-thread-can-wait"),
    pytest.param(0.0001, None, id="arg-a-busy-loop"),
    pytest.param(-1, None, id="arg-negative"),
    pytest.param(float("nan"), None, id="arg-nan"),
    pytest.param(float("inf"), None, id="arg-infinity"),
    pytest.param(True, None, id="arg-bool"),
])
def test_a_wrong_heartbeat_interval_is_the_default_with_one_warning(value, env, monkeypatch, caplog):
    """The heartbeat interval is 0.1 s to 1 h; anything else is 10 s, with a warning naming where it came from."""
    if env is not None:
        monkeypatch.setenv("RUNTRACKER_HEARTBEAT_S", env)
    assert config.heartbeat_interval_s(value) == 10.0
    where = "RUNTRACKER_HEARTBEAT_S=" if env is not None else "heartbeat_s="
    source = "(environment variable)" if env is not None else "(argument)"
    message = _one_warning(caplog, where, source, "not a number of seconds from 0.1 to 3600")
    assert message.endswith("using 10 s")


@pytest.mark.parametrize("value, env", [
    pytest.param(None, "0", id="env-zero"),
    pytest.param(None, "-5", id="env-negative"),
    pytest.param(None, "nan", id="env-nan"),
    pytest.param(None, "inf", id="env-infinity"),
    pytest.param(None, "604801", id="env-more-than-a-week"),
    pytest.param(1e10, None, id="arg-huge"),
    pytest.param("soon", None, id="arg-nonsense"),
])
def test_a_wrong_heartbeat_timeout_is_the_default_with_one_warning(value, env, monkeypatch, caplog):
    """The heartbeat timeout is more than 0 and at most 7 days; anything else is 60 s, with a warning."""
    if env is not None:
        monkeypatch.setenv("RUNTRACKER_HEARTBEAT_TIMEOUT_S", env)
    assert config.heartbeat_timeout_s(value) == 60.0
    where = ("RUNTRACKER_HEARTBEAT_TIMEOUT_S=" if env is not None else "heartbeat_timeout_s=")
    message = _one_warning(caplog, where, "above 0 and at most 604800")
    assert message.endswith("using 60 s")


def test_a_heartbeat_timeout_may_be_tiny_but_not_longer_than_a_week(caplog):
    """0.000001 s ("not beating right now") and exactly 7 days are taken as they are; a bit more is refused."""
    assert config.heartbeat_timeout_s(0.000001) == 0.000001
    assert config.heartbeat_timeout_s(604800) == 604800.0
    assert _warnings(caplog) == []
    assert config.heartbeat_timeout_s(604800.5) == 60.0
    _one_warning(caplog, "heartbeat_timeout_s=604800.5 (argument)")


# -- the ownerless timeout -------------------------------------------------------------------------------
@pytest.mark.parametrize("value, env, seconds", [
    pytest.param(None, None, 6 * 3600.0, id="default-6h"),
    pytest.param(None, "90m", 5400.0, id="env-minutes"),
    pytest.param(None, "6h", 21600.0, id="env-hours"),
    pytest.param(None, "1h30m", 5400.0, id="env-hours-and-minutes"),
    pytest.param(None, "3600", 3600.0, id="env-seconds"),
    pytest.param(None, "", 6 * 3600.0, id="empty-env-is-the-default"),
    pytest.param(120, "6h", 120.0, id="argument-wins"),
    pytest.param("2h", None, 7200.0, id="argument-as-a-duration"),
    pytest.param(0.5, None, 0.5, id="tiny-but-positive"),
    pytest.param("365d", None, 365 * 86400.0, id="the-maximum"),
])
def test_ownerless_timeout_from_argument_then_environment_then_6_hours(value, env, seconds, monkeypatch, caplog):
    """config.ownerless_timeout_s: argument, else $RUNTRACKER_OWNERLESS_TIMEOUT (a duration), else 6 h."""
    if env is not None:
        monkeypatch.setenv("RUNTRACKER_OWNERLESS_TIMEOUT", env)
    assert config.ownerless_timeout_s(value) == seconds
    assert _warnings(caplog) == []


@pytest.mark.parametrize("value, env", [
    pytest.param(None, "soon", id="env-nonsense"),
    pytest.param(None, "0", id="env-zero"),
    pytest.param(None, "-5", id="env-negative"),
    pytest.param(None, "nan", id="env-nan"),
    pytest.param(None, "inf", id="env-infinity"),
    pytest.param(None, "366d", id="env-more-than-a-year"),
    pytest.param(True, None, id="arg-bool"),
    pytest.param(float("inf"), None, id="arg-infinity"),
    pytest.param([6], None, id="arg-list"),
])
def test_a_wrong_ownerless_timeout_is_6_hours_with_one_warning(value, env, monkeypatch, caplog):
    """A wrong ownerless timeout never makes live runs of the original tool look lost: 6 h, with a warning."""
    if env is not None:
        monkeypatch.setenv("RUNTRACKER_OWNERLESS_TIMEOUT", env)
    assert config.ownerless_timeout_s(value) == 6 * 3600.0
    where = "RUNTRACKER_OWNERLESS_TIMEOUT=" if env is not None else "ownerless_timeout_s="
    message = _one_warning(caplog, where, "not a duration above 0 and at most 365 days")
    assert message.endswith("using 6 h")


TOML = """
[defaults]
ownerless_timeout = "8h"

[pipelines.nikki]
ownerless_timeout = "30m"

[pipelines.backup]
command = "pg_dump db"
"""


def test_config_file_ownerless_timeout_per_pipeline_then_defaults(tmp_path: Path, caplog):
    """A pipeline's own ownerless_timeout wins, else [defaults]; it leaves the exec settings alone."""
    path = tmp_path / "runtracker.toml"
    path.write_text(TOML)
    loaded = load(str(path))
    assert loaded.ownerless_timeout_s("nikki") == 1800.0
    assert loaded.ownerless_timeout_s("backup") == 8 * 3600.0
    assert loaded.ownerless_timeout_s("not-in-the-file") == 8 * 3600.0
    assert loaded.pipeline("nikki").settings == ExecSettings()
    assert parse({"pipelines": {"nikki": {}}}).ownerless_timeout_s("nikki") is None  # the global one applies
    assert _warnings(caplog) == []


@pytest.mark.parametrize("data, pipeline, expected, where", [
    pytest.param({"defaults": {"ownerless_timeout": "8h"}, "pipelines": {"nikki": {"ownerless_timeout": "soon"}}},
                 "nikki", 8 * 3600.0, "runtracker.toml: [pipelines.nikki] ownerless_timeout='soon'",
                 id="pipeline-value-wrong-defaults-apply"),
    pytest.param({"pipelines": {"nikki": {"ownerless_timeout": 0}}}, "nikki", None,
                 "runtracker.toml: [pipelines.nikki] ownerless_timeout=0", id="zero-the-global-applies"),
    pytest.param({"defaults": {"ownerless_timeout": "inf"}}, "nikki", None,
                 "runtracker.toml: [defaults] ownerless_timeout='inf'", id="defaults-infinity"),
    pytest.param({"defaults": {"ownerless_timeout": True}}, "nikki", None,
                 "runtracker.toml: [defaults] ownerless_timeout=True", id="defaults-bool"),
])
def test_a_wrong_ownerless_timeout_in_the_file_is_left_out_with_a_warning(data, pipeline, expected, where, caplog):
    """The reaper reads it and must go on: a wrong value is a warning naming file and table, and the next
    level ([defaults], else the global timeout) applies."""
    assert parse(data, "runtracker.toml").ownerless_timeout_s(pipeline) == expected
    _one_warning(caplog, where, "not a duration")


@pytest.mark.parametrize("data, message", [
    pytest.param({"defaults": {"timeout": "inf"}}, "[defaults] timeout: not a duration: 'inf'", id="timeout-infinity"),
    pytest.param({"defaults": {"timeout": "nan"}}, "[defaults] timeout: not a duration: 'nan'", id="timeout-nan"),
    pytest.param({"defaults": {"timeout": float("nan")}}, "not a duration: nan", id="timeout-nan-float"),
    pytest.param({"pipelines": {"nikki": {"timeout": "31d"}}},
                 "[pipelines.nikki] timeout: the timeout is at most 30d, not '31d'", id="timeout-past-30-days"),
    pytest.param({"defaults": {"kill_after": "2d"}}, "kill_after is at most 1d, not '2d'", id="kill-after-past-a-day"),
])
def test_config_file_exec_values_out_of_range_are_errors(data, message):
    """exec refuses to start on a timeout, kill_after or tail out of range, saying where."""
    with pytest.raises(ConfigError) as raised:
        parse(data, "runtracker.toml")
    assert message in str(raised.value)


# -- once per process --------------------------------------------------------------------------------------
def test_a_wrong_environment_value_warns_once_not_at_every_tracker(monkeypatch, caplog):
    """Three trackers reading the same wrong $RUNTRACKER_HEARTBEAT_S give one warning; another wrong value its own."""
    monkeypatch.setenv("RUNTRACKER_HEARTBEAT_S", "1e10")
    for _ in range(3):
        assert RunTracker("nikki").heartbeat_s == 10.0
    assert len(_warnings(caplog)) == 1
    monkeypatch.setenv("RUNTRACKER_HEARTBEAT_S", "0.0001")
    RunTracker("nikki")
    RunTracker("nikki")
    assert len(_warnings(caplog)) == 2


# -- the constructor never raises ------------------------------------------------------------------------
class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


BAD_ARGUMENTS = [
    {"pipeline": None}, {"pipeline": 5}, {"pipeline": b"nik\xffki"}, {"pipeline": 3.5}, {"pipeline": Unprintable()},
    {"db": 5}, {"db": b"runs.sqlite"}, {"db": ["runs.sqlite"]}, {"db": object()}, {"db": "mysql://u:pw@h/db"},
    {"club_slug": 5}, {"club_slug": b"rondo"}, {"club_slug": ["rondo"]},
    {"retention_days": float("inf")}, {"retention_days": float("nan")}, {"retention_days": "x"},
    {"retention_days": -1}, {"retention_days": 10**6}, {"retention_days": 10**400}, {"retention_days": 2.9},
    {"retention_days": Unprintable()},
    {"heartbeat_s": -1}, {"heartbeat_s": 0}, {"heartbeat_s": 1e10}, {"heartbeat_s": float("nan")},
    {"heartbeat_s": "x"}, {"heartbeat_s": 10**400}, {"heartbeat_s": Unprintable()},
    {"heartbeat_timeout_s": 0}, {"heartbeat_timeout_s": -1}, {"heartbeat_timeout_s": float("inf")},
    {"heartbeat_timeout_s": "x"}, {"heartbeat_timeout_s": [1]},
]


def test_the_constructor_never_raises_whatever_the_arguments(caplog):
    """A table of wrong arguments: each gives a tracker with safe settings, never an exception."""
    for arguments in BAD_ARGUMENTS:
        kwargs: dict[str, object] = {"pipeline": "nikki", **arguments}
        tracker = RunTracker(**kwargs)  # type: ignore[arg-type]
        assert isinstance(tracker.pipeline, str) and tracker.pipeline, arguments
        assert tracker.club_slug is None or isinstance(tracker.club_slug, str), arguments
        assert 0 <= tracker.retention_days <= config.MAX_RETENTION_DAYS, arguments
        assert config.MIN_HEARTBEAT_S <= tracker.heartbeat_s <= config.MAX_HEARTBEAT_S, arguments
        assert 0 < tracker.heartbeat_timeout_s <= config.MAX_HEARTBEAT_TIMEOUT_S, arguments
        assert math.isfinite(tracker.heartbeat_s) and math.isfinite(tracker.heartbeat_timeout_s)
    settings = {"retention_days", "heartbeat_s", "heartbeat_timeout_s"}
    assert len(_warnings(caplog)) == sum(1 for arguments in BAD_ARGUMENTS if set(arguments) & settings)


# -- the database ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("db", [
    "mysql://u:secret@db.example/runs",
    "postgresq://u:secret@db.example/runs",
    "postgresql+asyncpg://u:secret@db.example/runs",
    "postgresql:runs",
    "file:///tmp/runs.sqlite",
    "https://db.example/runs",
    "sqlite3:///runs.sqlite",
    "host=db.example dbname=runs password=secret",
])
def test_an_unknown_database_url_is_refused_naming_what_is_accepted(db, tmp_path, monkeypatch):
    """Any URL but sqlite: and postgresql:// is a ValueError listing the accepted forms, without the password,
    never a file of that name; the same from $RUNTRACKER_DB."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as raised:
        config.resolve_db(db)
    assert "postgresql://" in str(raised.value) and "secret" not in str(raised.value)
    monkeypatch.setenv("RUNTRACKER_DB", db)
    with pytest.raises(ValueError):
        config.resolve_db(None)


@pytest.mark.swallows
@pytest.mark.parametrize("db", ["mysql://u:pw@db.example/runs", "postgresq://u@db.example/runs",
                                "https://db.example/runs", "file:///runs.sqlite"])
def test_start_run_on_an_unknown_database_url_logs_it_and_the_pipeline_goes_on(db, tmp_path, monkeypatch, caplog,
                                                                                 swallowed):
    """start_run refuses the URL through the guard (logged, None) and writes no stray local file; every later
    call of the run is a no-op, never an exception."""
    monkeypatch.chdir(tmp_path)
    tracker = RunTracker("nikki", db=db)
    assert tracker.start_run() is None
    assert tracker.start_step("sync") is None
    tracker.record_error(error_message="x")
    assert tracker.end_run("success") is False
    assert [type(exc) for exc in swallowed] == [ValueError]
    assert "unknown database URL scheme" in caplog.text
    assert list(tmp_path.iterdir()) == []
