"""`runtracker config show`: every setting with where it came from, secrets masked, wrong values with their warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import SRC
from runtracker.cli import cli
from runtracker.settings.effective import NAMES

CONFIG = """\
[defaults]
timeout = "2h"
ownerless_timeout = "soon"

[pipelines.nikki]
command = ["node", "sync.js", "--verbose"]
schedule = "15 3 * * *"

[alerts.channels]
ops = "mailtos://alerts:mail-pass-1234@smtp.example.org?to=ops@example.org"
chat = "slack://T0000/B0000/XXXXXXXXSECRET"

[redact]
enabled = false
"""
SECRET_DB = "postgresql://rt:db-pass-5678@db.example.org/runs"
WEB_SECRET = "w" * 40


@pytest.fixture(autouse=True)
def _empty_directory_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No runtracker setting in the environment, and an empty directory (no ./runtracker.toml)."""
    for name in list(os.environ):
        if name.startswith("RUNTRACKER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def show(*args: str, env: dict[str, str] | None = None) -> dict[str, dict]:
    """`config show --json` in this process: the rows by name."""
    result = CliRunner().invoke(cli, ["config", "show", "--json", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.output)["settings"]}


def test_each_setting_says_whether_it_came_from_an_argument_the_environment_the_file_or_the_default(tmp_path):
    """--db is an argument, RUNTRACKER_HEARTBEAT_S the environment, a file key its path:line, the rest default."""
    (tmp_path / "pipelines.toml").write_text(CONFIG)
    rows = show("--db", "runs.sqlite", env={"RUNTRACKER_HEARTBEAT_S": "2.5",
                                            "RUNTRACKER_CONFIG": str(tmp_path / "pipelines.toml")})
    assert (rows["db"]["source"], rows["db"]["where"]) == ("argument", "--db")
    assert rows["db"]["value"] == f"sqlite:///{tmp_path / 'runs.sqlite'}"
    assert (rows["heartbeat_s"]["value"], rows["heartbeat_s"]["source"]) == (2.5, "environment")
    assert rows["heartbeat_s"]["where"] == "RUNTRACKER_HEARTBEAT_S"
    assert (rows["config"]["source"], rows["config"]["where"]) == ("environment", "RUNTRACKER_CONFIG")
    assert rows["defaults.timeout"] == {**rows["defaults.timeout"], "value": 7200.0, "text": "2h",
                                        "source": "config file", "where": f"{tmp_path / 'pipelines.toml'}:2"}
    assert rows["redact"]["source"] == "config file" and rows["redact"]["value"] is False
    assert rows["retention_days"] == {"name": "retention_days", "value": 3, "text": "3", "source": "default",
                                      "where": "", "given": None, "warnings": []}
    assert rows["defaults.kill_after"]["source"] == "default"
    assert "command = node sync.js --verbose" in rows["pipelines.nikki"]["text"]


def test_the_config_file_found_in_the_directory_is_the_default_one(tmp_path):
    """Without --config or $RUNTRACKER_CONFIG, ./runtracker.toml is read if it exists; --config wins over both."""
    assert show()["config"]["value"] is None
    (tmp_path / "runtracker.toml").write_text('[defaults]\ntail = "1KB"\n')
    (tmp_path / "other.toml").write_text('[defaults]\ntail = "2KB"\n')
    rows = show()
    assert (rows["config"]["value"], rows["config"]["source"]) == ("runtracker.toml", "default")
    assert rows["defaults.tail"]["text"] == "1KB" and rows["defaults.tail"]["where"] == "runtracker.toml:2"
    rows = show("--config", "other.toml", env={"RUNTRACKER_CONFIG": "runtracker.toml"})
    assert (rows["config"]["source"], rows["defaults.tail"]["value"]) == ("argument", 2048)


def test_secrets_are_masked_even_with_redaction_switched_off(tmp_path):
    """The database password, the session secret and the channels' secrets never appear, [redact] off or not."""
    (tmp_path / "runtracker.toml").write_text(CONFIG)
    for as_json in (True, False):
        result = CliRunner().invoke(cli, ["config", "show", *(["--json"] if as_json else [])],
                                    env={"RUNTRACKER_DB": SECRET_DB, "RUNTRACKER_WEB_SECRET": WEB_SECRET},
                                    catch_exceptions=False)
        for secret in ("db-pass-5678", WEB_SECRET, "mail-pass-1234", "XXXXXXXXSECRET", "T0000"):
            assert secret not in result.output
        assert "postgresql://rt:***@db.example.org/runs" in result.output
        assert "mailtos://alerts:***@smtp.example.org?to=ops@example.org" in result.output
    rows = show()
    assert rows["web_secret"]["value"] is None
    rows = show(env={"RUNTRACKER_WEB_SECRET": WEB_SECRET})
    assert rows["web_secret"]["value"] == "*** (40 characters)" and rows["web_secret"]["given"] == "***"
    assert rows["alerts.channels.chat"]["value"] == ["slack://***"]


def test_a_wrong_value_shows_the_value_used_instead_and_the_warning_a_pipeline_would_log(tmp_path):
    """RUNTRACKER_RETENTION_DAYS=abc shows 0 (keep everything) and the warning, word for word; so do the file's."""
    (tmp_path / "runtracker.toml").write_text(CONFIG)
    rows = show(env={"RUNTRACKER_RETENTION_DAYS": "abc", "RUNTRACKER_WEB_SECRET": "short"})
    retention = rows["retention_days"]
    assert (retention["value"], retention["source"], retention["given"]) == (0, "environment", "abc")
    assert retention["warnings"] == [
        "runtracker: RUNTRACKER_RETENTION_DAYS='abc' (environment variable) is not a whole number of days from 0 "
        "to 36,500; using 0 (every run is kept)"]
    assert rows["web_secret"]["warnings"] == [
        "$RUNTRACKER_WEB_SECRET is too short: 5 characters, at least 32 are needed"]
    ownerless = rows["defaults.ownerless_timeout"]
    assert ownerless["value"] is None and ownerless["where"] == "runtracker.toml:3"
    assert ownerless["warnings"] == [
        "runtracker: runtracker.toml:3: [defaults] ownerless_timeout='soon' is not a duration above 0 and at most "
        "365 days (e.g. 6h, 90m, 3600); using the global ownerless timeout"]
    human = CliRunner().invoke(cli, ["config", "show"], env={"RUNTRACKER_RETENTION_DAYS": "abc"}).output
    assert "\n  warning: runtracker: RUNTRACKER_RETENTION_DAYS='abc' (environment variable) is not" in human
    assert "retention_days" in human.split("\n  warning: runtracker: RUNTRACKER_RETENTION_DAYS")[0].splitlines()[-1]


def test_a_database_nobody_can_mean_and_a_broken_config_file_are_shown_not_refused(tmp_path):
    """`mysql://` and a file that is not TOML are rows with their error; the command still exits 0."""
    (tmp_path / "runtracker.toml").write_text("[defaults\n")
    rows = show("--db", "mysql://u:db-pass-5678@host/x")
    assert rows["db"]["value"] is None and "unknown database URL scheme 'mysql'" in rows["db"]["warnings"][0]
    assert rows["db"]["given"] == "mysql://u:***@host/x"
    assert "runtracker.toml is not valid TOML" in rows["config"]["warnings"][0]
    assert "nothing of the file is used" in rows["config"]["warnings"][0]
    assert not any(name.startswith("defaults.") for name in rows)


def test_json_has_every_setting_with_the_same_fields():
    """--json is one object: `settings`, a list of rows with name, value, text, source, where, given, warnings."""
    result = CliRunner().invoke(cli, ["config", "show", "--json"], catch_exceptions=False)
    document = json.loads(result.output)
    assert list(document) == ["settings"]
    assert [row["name"] for row in document["settings"]] == list(NAMES)
    for row in document["settings"]:
        assert list(row) == ["name", "value", "text", "source", "where", "given", "warnings"]
        assert row["source"] in ("argument", "environment", "config file", "default")


def test_hostile_text_is_escaped_for_the_terminal_and_exact_in_json(tmp_path):
    """A host name with an escape sequence is printed escaped; --json gives it back exactly."""
    hostile = "evil\x1b[2Jhost\r"
    human = CliRunner().invoke(cli, ["config", "show"], env={"RUNTRACKER_HOSTNAME": hostile}).output
    assert "\x1b" not in human and "\r" not in human and "evil\\x1b[2Jhost\\r" in human
    assert show(env={"RUNTRACKER_HOSTNAME": hostile})["hostname"]["value"] == hostile


@pytest.mark.subprocess
def test_python_m_runtracker_config_show_prints_the_environment_it_runs_in(tmp_path):
    """A real process: the environment's values and warnings in the rows, nothing on stderr, exit 0."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": SRC, "RUNTRACKER_RETENTION_DAYS": "abc",
           "RUNTRACKER_REDACT": "maybe", "RUNTRACKER_DB": SECRET_DB}
    result = subprocess.run([sys.executable, "-m", "runtracker", "config", "show", "--json"], env=env,
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
    rows = {row["name"]: row for row in json.loads(result.stdout)["settings"]}
    assert rows["retention_days"]["value"] == 0 and len(rows["retention_days"]["warnings"]) == 1
    assert rows["redact"]["value"] is True and "RUNTRACKER_REDACT='maybe'" in rows["redact"]["warnings"][0]
    assert rows["db"]["value"] == "postgresql://rt:***@db.example.org/runs"
    assert "db-pass-5678" not in result.stdout
