"""The command line: runs, show, selftest, and help for every command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import app_env
from runtracker import RunTracker
from runtracker.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_selftest_records_the_seed_self_test_run(db_url):
    """selftest prints the seed's line and leaves a partial run with steps, errors, lists and counts."""
    result = invoke("selftest", "--db", db_url)
    assert result.exit_code == 0
    assert result.output.startswith("Run tracker test complete, run_id: ")
    run_id = int(result.output.rsplit(":", 1)[1])
    shown = json.loads(invoke("show", "--db", db_url, "--json", str(run_id)).output)
    assert shown["run"]["outcome"] == "partial"
    assert [s["step_name"] for s in shown["steps"]] == ["test-step-1", "test-step-2"]
    assert [e["member_identifier"] for e in shown["errors"]] == ["TEST001", "TEST002", "TEST003", None]


def test_python_m_runtracker_selftest_uses_the_environment_database(tmp_path, sqlite_url):
    """`python -m runtracker selftest` is the same CLI and honours RUNTRACKER_DB."""
    result = subprocess.run([sys.executable, "-m", "runtracker", "selftest"], env=app_env(sqlite_url),
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Run tracker test complete, run_id: 1" in result.stdout
    assert not (tmp_path / "data").exists()


def test_runs_lists_recent_runs_newest_first(db_url):
    """runs shows pipeline, outcome, start, duration and counts, newest first, filtered by pipeline."""
    for pipeline, outcome in (("nikki", "success"), ("freescout", "failure"), ("nikki", "partial")):
        t = RunTracker(pipeline, db=db_url)
        t.start_run()
        s = t.start_step("sync")
        t.end_step(s, "success", created=3, updated=2)
        t.end_run(outcome)
    out = invoke("runs", "--db", db_url).output.splitlines()
    assert out[0].split() == ["id", "pipeline", "outcome", "started", "duration", "created", "updated", "skipped",
                              "failed"]
    assert [line.split()[1:3] for line in out[1:]] == [["nikki", "partial"], ["freescout", "failure"],
                                                      ["nikki", "success"]]
    assert out[1].split()[-4:] == ["3", "2", "0", "0"]
    only = invoke("runs", "--db", db_url, "--pipeline", "nikki", "--json").output.splitlines()
    assert [json.loads(line)["outcome"] for line in only] == ["partial", "success"]


def test_runs_on_an_empty_database_says_so(db_url):
    """runs with nothing recorded prints 'no runs'."""
    assert invoke("runs", "--db", db_url).output.strip() == "no runs"


def test_show_prints_steps_errors_and_the_crash_stack(db_url):
    """show prints the run, its steps, its errors, and the stack of a crash row."""
    t = RunTracker("nikki", db=db_url)
    with pytest.raises(ValueError):
        with t.run() as run:
            with run.step("sync") as step:
                step.error("member not found", member_identifier="KNVB1")
                raise ValueError("boom")
    out = invoke("show", "--db", db_url, str(run.id)).output
    assert f"run {run.id}  nikki  FAILURE" in out
    assert "sync" in out and "[KNVB1]: member not found" in out
    assert "crash: ValueError: boom" in out and "Traceback (most recent call last)" in out


def test_show_unknown_run_fails_with_a_clear_message(db_url):
    """show of a missing id exits 1 with 'no run with id'."""
    result = CliRunner().invoke(cli, ["show", "--db", db_url, "424242"])
    assert result.exit_code == 1 and "no run with id 424242" in result.output


def _commands():
    return sorted(cli.commands)


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help_and_is_documented(name):
    """Each command answers -h with its help text and appears in the README's CLI reference."""
    result = invoke(name, "-h")
    assert result.exit_code == 0 and "Usage:" in result.output
    assert (cli.commands[name].help or "").strip()
    assert f"runtracker {name}" in README
