"""Deaths no in-process hook sees: a real subprocess is SIGKILLed, calls os._exit(5) or segfaults, and the dead
run is found by `runtracker reap` and, separately, by a new tracker's start_run."""

from __future__ import annotations

import json
import signal

import pytest
from click.testing import CliRunner
from reaplib import crash_files

from helpers import Db, run_app
from runtracker import RunTracker
from runtracker.cli import cli

DEATHS = {
    "sigkill": ("time.sleep(60)\n", -signal.SIGKILL),
    "os_exit": ("os._exit(5)\n", 5),
    "segfault": ("ctypes.string_at(0)\n", -signal.SIGSEGV),
}


def _reap_with_cli(db_url: str) -> str:
    result = CliRunner().invoke(cli, ["reap", "--db", db_url])
    assert result.exit_code == 0, result.output
    return result.output


def _reap_with_start_run(db_url: str) -> str:
    tracker = RunTracker("freescout", db=db_url)
    assert tracker.start_run() is not None
    assert tracker.end_run("success")
    return ""


DETECTORS = {"runtracker reap": _reap_with_cli, "start_run": _reap_with_start_run}


@pytest.mark.parametrize("detector", DETECTORS)
@pytest.mark.parametrize("death", DEATHS)
def test_hard_death_is_reaped_as_failure_with_a_crash_row(start_owner, db_url, crash_dir, death, detector):
    """SIGKILL / os._exit(5) / segfault: the run ends `failure` with totals, its step failed and one crash row."""
    code, exit_status = DEATHS[death]
    owner = start_owner(code)
    if death == "sigkill":
        owner.proc.kill()
    status, _, _ = owner.finish()
    assert status == exit_status
    db = Db(db_url)
    assert db.run(owner.run_id)["outcome"] == "running"  # nothing ran in the dying process

    output = DETECTORS[detector](db_url)

    run = db.run(owner.run_id)
    assert run["outcome"] == "failure"
    assert run["finished_at"] is not None and run["duration_ms"] is not None
    assert (run["total_created"], run["total_updated"]) == (7, 2)
    assert run["reap_reason"] == "pid_gone" and run["reaped_at"] is not None
    summary = json.loads(run["summary_json"])
    assert summary["crash"] is True and summary["kind"] == "lost" and summary["reason"] == "pid_gone"
    assert summary["step_in_progress"] == "nikki-sync" and summary["detected_by"] == detector
    assert [(s["step_name"], s["outcome"]) for s in db.steps(owner.run_id)] == [
        ("nikki-download", "success"), ("nikki-sync", "failure")]
    crashes = db.crash_rows(owner.run_id)
    assert len(crashes) == 1
    message = crashes[0]["error_message"]
    assert "process lost" in message and f"pid {owner.proc.pid}" in message and "no longer exists" in message
    assert "step in progress: nikki-sync" in message and detector in message
    assert crashes[0]["run_step_id"] == db.steps(owner.run_id)[1]["id"]
    if detector == "runtracker reap":
        assert f"reaped run {owner.run_id} (nikki)" in output
    if death == "segfault":
        assert "Fatal Python error: Segmentation fault" in message
        stack = crashes[0]["error_stack"]
        assert stack.startswith("Fatal Python error: Segmentation fault")
        assert "Current thread" in stack and "app.py" in stack and "string_at" in stack
    else:
        assert crashes[0]["error_stack"] is None
    assert crash_files(crash_dir) == []  # the reaper removed the faulthandler file


def test_reaping_twice_changes_nothing(start_owner, db_url):
    """A second reap finds nothing: the run is no longer `running`, and it keeps exactly one crash row."""
    owner = start_owner("os._exit(5)\n")
    owner.finish()
    assert f"reaped run {owner.run_id}" in _reap_with_cli(db_url)
    before = Db(db_url).run(owner.run_id)
    assert _reap_with_cli(db_url).strip() == "nothing to reap"
    assert Db(db_url).run(owner.run_id) == before
    assert len(Db(db_url).crash_rows(owner.run_id)) == 1


def test_segfault_exits_as_without_runtracker(tmp_path, db_url, owner_env, crash_dir):
    """faulthandler writes into its file, not to stderr: the segfault looks exactly as it does untracked."""
    code = """
import ctypes, os
if os.environ["TRACK"] == "1":
    from runtracker import RunTracker
    RunTracker("nikki").start_run()
ctypes.string_at(0)
"""
    plain = run_app(tmp_path, code, db_url, env={**owner_env, "TRACK": "0"})
    tracked = run_app(tmp_path, code, db_url, env={**owner_env, "TRACK": "1"})
    assert tracked.returncode == plain.returncode == -signal.SIGSEGV
    assert tracked.stderr == plain.stderr == ""
    assert len(crash_files(crash_dir)) == 1  # waiting for the reaper


def test_faulthandler_enabled_by_the_program_is_left_alone(tmp_path, db_url, owner_env, crash_dir):
    """With PYTHONFAULTHANDLER set, the traceback still goes to stderr; the reaper records the death without it."""
    code = """
import ctypes
from runtracker import RunTracker
RunTracker("nikki").start_run()
ctypes.string_at(0)
"""
    result = run_app(tmp_path, code, db_url, env={**owner_env, "PYTHONFAULTHANDLER": "1"})
    assert result.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in result.stderr
    assert crash_files(crash_dir) == []
    assert "reaped run" in _reap_with_cli(db_url)
    run = Db(db_url).run()
    assert run["outcome"] == "failure"
    assert Db(db_url).crash_rows(run["id"])[0]["error_stack"] is None
