"""A Python pipeline run by `runtracker exec` records its steps and errors into the wrapper's run; the
wrapper still decides how the run ends."""

from __future__ import annotations

import json

from exec_support import child, run_exec, summary

from helpers import Db

PIPELINE = """
import sys
from runtracker import RunTracker
tracker = RunTracker("{pipeline}")
run_id = tracker.start_run()
print("child run", run_id, flush=True)
step = tracker.start_step("nikki-download")
tracker.end_step(step, "success", created=40)
step = tracker.start_step("nikki-sync")
tracker.record_error(step_name="nikki-sync", step_id=step, member_identifier="KNVB1004",
                     error_message="member not found")
{rest}
"""
ENDS_PARTIAL = """
tracker.end_step(step, "partial", updated=9, failed=1)
tracker.end_run("partial", {"contributions": 40})
"""


def test_python_child_attaches_its_steps_and_errors_to_the_wrappers_run(tmp_path, db_url):
    """One run only: the child's steps and errors are in it, and its `partial` makes the exit-0 run partial."""
    code = PIPELINE.format(pipeline="nikki", rest=ENDS_PARTIAL)
    result = run_exec(tmp_path, db_url, "--", *child(tmp_path, code))
    assert result.returncode == 0, result.stderr
    db = Db(db_url)
    [run] = db.runs()
    assert result.stdout.decode() == f"child run {run['id']}\n"
    assert run["outcome"] == "partial" and run["exit_code"] == 0
    assert (run["total_created"], run["total_updated"], run["total_failed"]) == (40, 9, 1)
    assert [(s["step_name"], s["outcome"]) for s in db.steps(run["id"])] == [
        ("nikki-download", "success"), ("nikki-sync", "partial")]
    [error] = db.errors(run["id"])
    assert error["member_identifier"] == "KNVB1004" and error["error_message"] == "member not found"
    assert summary(run)["child"] == {"outcome": "partial", "summary": {"contributions": 40}}


def test_python_child_crash_leaves_its_traceback_and_the_wrapper_records_the_exit(tmp_path, db_url):
    """The child raises: its crash row (with the stack) and the wrapper's exit-1 row, one `failure` run."""
    code = PIPELINE.format(pipeline="nikki", rest="raise ValueError('nikki API changed')")
    result = run_exec(tmp_path, db_url, "--", *child(tmp_path, code))
    assert result.returncode == 1
    assert b"ValueError: nikki API changed" in result.stderr  # the traceback, passed through on stderr
    assert b"Traceback" not in result.stdout
    db = Db(db_url)
    [run] = db.runs()
    assert run["outcome"] == "failure" and run["exit_code"] == 1
    crashes = db.crash_rows(run["id"])
    assert [c["error_message"] for c in crashes] == ["ValueError: nikki API changed", "exited with code 1"]
    assert "Traceback" in crashes[0]["error_stack"]
    assert [(s["step_name"], s["outcome"]) for s in db.steps(run["id"])] == [
        ("nikki-download", "success"), ("nikki-sync", "failure")]


def test_python_child_exiting_without_end_run_leaves_the_outcome_to_its_exit_status(tmp_path, db_url):
    """No end_run in the child: no crash row from it; exit 0 makes the run `success`, open steps end."""
    code = PIPELINE.format(pipeline="nikki", rest="")
    result = run_exec(tmp_path, db_url, "--", *child(tmp_path, code))
    assert result.returncode == 0, result.stderr
    db = Db(db_url)
    [run] = db.runs()
    assert run["outcome"] == "success"
    assert db.crash_rows(run["id"]) == []
    assert all(s["finished_at"] is not None for s in db.steps(run["id"]))


def test_python_child_killed_mid_step_leaves_no_step_open(tmp_path, db_url):
    """The child is SIGKILLed inside a step: the wrapper ends the run `failure` and the open step with it,
    saying how the command died."""
    code = PIPELINE.format(pipeline="nikki", rest="import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    result = run_exec(tmp_path, db_url, "--", *child(tmp_path, code))
    assert result.returncode == -9
    db = Db(db_url)
    [run] = db.runs()
    assert run["outcome"] == "failure"
    steps = db.steps(run["id"])
    assert [(s["step_name"], s["outcome"]) for s in steps] == [("nikki-download", "success"),
                                                              ("nikki-sync", "failure")]
    assert json.loads(steps[1]["detail_json"]) == {"crash": "signal"}


def test_python_child_tracking_another_pipeline_starts_a_run_of_its_own(tmp_path, db_url):
    """A tracker for another pipeline does not attach: two runs, each ending as its owner says."""
    code = PIPELINE.format(pipeline="freescout", rest=ENDS_PARTIAL)
    result = run_exec(tmp_path, db_url, "--", *child(tmp_path, code))
    assert result.returncode == 0, result.stderr
    runs = {r["pipeline"]: r for r in Db(db_url).runs()}
    assert runs["nikki"]["outcome"] == "success" and runs["freescout"]["outcome"] == "partial"
    assert runs["nikki"]["total_created"] == 0 and runs["freescout"]["total_created"] == 40


def test_with_block_in_the_child_attaches_too(tmp_path, db_url):
    """`with RunTracker(...).run()` in the child: same attachment; a clean block reports success."""
    code = """
from runtracker import RunTracker
with RunTracker("nikki").run() as run:
    with run.step("nikki-download") as step:
        step.created += 3
    run.stats["members"] = 3
"""
    result = run_exec(tmp_path, db_url, "--", *child(tmp_path, code))
    assert result.returncode == 0, result.stderr
    [run] = Db(db_url).runs()
    assert run["outcome"] == "success" and run["total_created"] == 3
    assert summary(run)["child"] == {"outcome": "success", "summary": {"members": 3}}
