"""`runtracker runs` and `runtracker show` print times in the display zone with their offset: --utc, --timezone,
$RUNTRACKER_TIMEZONE, the config file's [dashboard] timezone, $TZ, else UTC; --json keeps the stored UTC text; a
wrong zone is a usage error as an option and a warning (and UTC) as a setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtracker.cli import cli
from runtracker.storage import open_store

START = "2026-10-25T00:30:00.123Z"  # 02:30 CEST in Amsterdam, the first of the two 02:30s that night
SECOND = "2026-10-25T01:30:00.456Z"  # 02:30 CET, the second
END = "2026-10-25T01:45:00.000Z"


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def db(db_url: str) -> str:
    """Two runs of nikki on the night the clocks go back: at the first 02:30 and at the second."""
    store = open_store(db_url)
    with store.transaction() as cur:
        for started, finished in ((START, SECOND), (SECOND, END)):
            cur.execute(store.sql("INSERT INTO runs (pipeline, started_at, finished_at, duration_ms, outcome)"
                                  " VALUES ('nikki', ?, ?, 1000, 'success')"), (started, finished))
    store.close()
    return db_url


def started_column(output: str) -> tuple[str, list[str]]:
    """The header of the start column and each row's start (a date, a time and an offset)."""
    lines = output.splitlines()
    header = next(part for part in lines[0].split("  ") if part.startswith("started"))
    return header, [" ".join(line.split()[3:6]) for line in lines[1:]]


def test_runs_without_a_zone_prints_utc_with_its_offset(db):
    """Nothing set (no $TZ either: tests/conftest.py): UTC, and the header says so."""
    assert started_column(invoke("runs", "--db", db).output) == (
        "started (UTC)", ["2026-10-25 01:30:00 +00:00", "2026-10-25 00:30:00 +00:00"])


def test_runs_in_the_configured_zone_tells_the_two_half_past_twos_apart(db, monkeypatch):
    """$RUNTRACKER_TIMEZONE=Europe/Amsterdam: both runs started at 02:30 by the wall clock, an hour apart; the
    offset tells which is which."""
    monkeypatch.setenv("RUNTRACKER_TIMEZONE", "Europe/Amsterdam")
    assert started_column(invoke("runs", "--db", db).output) == (
        "started (Europe/Amsterdam)", ["2026-10-25 02:30:00 +01:00", "2026-10-25 02:30:00 +02:00"])


def test_runs_utc_and_timezone_options_win_over_the_setting(db, monkeypatch):
    monkeypatch.setenv("RUNTRACKER_TIMEZONE", "Europe/Amsterdam")
    assert started_column(invoke("runs", "--db", db, "--utc").output)[1] == [
        "2026-10-25 01:30:00 +00:00", "2026-10-25 00:30:00 +00:00"]
    assert started_column(invoke("runs", "--db", db, "--timezone", "America/New_York").output) == (
        "started (America/New_York)", ["2026-10-24 21:30:00 -04:00", "2026-10-24 20:30:00 -04:00"])


def test_the_config_files_zone_wins_over_tz_and_tz_over_utc(db, tmp_path: Path, monkeypatch):
    """[dashboard] timezone (through --config or $RUNTRACKER_CONFIG) before the machine's $TZ; $TZ before UTC."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert started_column(invoke("runs", "--db", db).output)[0] == "started (Asia/Tokyo)"
    config = tmp_path / "runtracker.toml"
    config.write_text('[dashboard]\ntimezone = "Europe/Amsterdam"\n')
    assert started_column(invoke("runs", "--db", db, "--config", str(config)).output)[0] == \
        "started (Europe/Amsterdam)"
    monkeypatch.setenv("RUNTRACKER_CONFIG", str(config))
    assert started_column(invoke("runs", "--db", db).output)[0] == "started (Europe/Amsterdam)"


def test_show_prints_the_runs_times_to_the_millisecond_in_the_zone(db, monkeypatch):
    monkeypatch.setenv("RUNTRACKER_TIMEZONE", "Europe/Amsterdam")
    out = invoke("show", "--db", db, "1").output
    assert "  started_at    2026-10-25 02:30:00.123 +02:00 (Europe/Amsterdam)\n" in out
    assert "  finished_at   2026-10-25 02:30:00.456 +01:00\n" in out
    utc = invoke("show", "--db", db, "--utc", "1").output
    assert "  started_at    2026-10-25 00:30:00.123 +00:00 (UTC)\n" in utc


def test_json_keeps_the_stored_utc_text_whatever_the_zone(db, monkeypatch):
    """--json is for programs: times as stored."""
    monkeypatch.setenv("RUNTRACKER_TIMEZONE", "Europe/Amsterdam")
    assert [json.loads(line)["started_at"] for line in invoke("runs", "--db", db, "--json").output.splitlines()] \
        == [SECOND, START]
    assert json.loads(invoke("show", "--db", db, "--json", "1").output)["run"]["started_at"] == START


@pytest.mark.parametrize("args", [("--timezone", "Europe/Amsterdan"), ("--timezone", "../etc/passwd"),
                                  ("--utc", "--timezone", "Europe/Amsterdam")])
def test_a_wrong_zone_option_is_a_usage_error(db, args):
    result = CliRunner().invoke(cli, ["runs", "--db", db, *args])
    assert result.exit_code == 2
    assert "not a time zone" in result.output or "exclude each other" in result.output


def test_a_wrong_zone_setting_is_a_warning_on_stderr_and_utc(db, monkeypatch, tmp_path: Path):
    """A misspelt $RUNTRACKER_TIMEZONE or [dashboard] timezone: the command works, in UTC, and says why."""
    monkeypatch.setenv("RUNTRACKER_TIMEZONE", "Europe/Amsterdan")
    result = invoke("runs", "--db", db)
    assert result.exit_code == 0
    assert started_column(result.stdout)[0] == "started (UTC)"
    assert result.stderr == ("runtracker: RUNTRACKER_TIMEZONE='Europe/Amsterdan' (environment variable) is not a "
                             "time zone (use a name such as Europe/Amsterdam or UTC); using UTC (times are shown in "
                             "UTC)\n")
    monkeypatch.delenv("RUNTRACKER_TIMEZONE")
    config = tmp_path / "runtracker.toml"
    config.write_text('[dashboard]\ntimezone = "Europe/Amsterdan"\n')
    result = invoke("show", "--db", db, "--config", str(config), "1")
    assert result.exit_code == 0 and "(UTC)" in result.stdout
    assert "runtracker.toml:2: [dashboard] timezone='Europe/Amsterdan' (config file) is not a time zone" in \
        result.stderr


def test_a_config_file_that_cannot_be_used_is_a_warning_and_the_runs_are_printed(db, tmp_path: Path):
    config = tmp_path / "runtracker.toml"
    config.write_text("[dashboard\n")
    result = invoke("runs", "--db", db, "--config", str(config))
    assert result.exit_code == 0 and started_column(result.stdout)[0] == "started (UTC)"
    assert "is not valid TOML" in result.stderr and "its [dashboard] timezone is not used" in result.stderr
