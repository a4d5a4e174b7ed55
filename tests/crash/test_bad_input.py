"""Bad input never raises and never leaves a run `running`: one real subprocess per kind of bad input.

Each app feeds the input to the tracker, then ends the run and prints "pipeline went on". We assert on the
rows, the exit code (0) and stderr (no traceback; at most runtracker's own log lines).
"""

from __future__ import annotations

import json

import pytest

from helpers import Db, run_app

PRELUDE = """
import os, sys
from runtracker import RunTracker
t = RunTracker("nikki")
t.start_run()
step = t.start_step("nikki-sync")
"""
EPILOGUE = """
t.end_step(step, "success")
t.end_run("success")
print("pipeline went on")
"""


def run_input(tmp_path, db_url, snippet):
    result = run_app(tmp_path, PRELUDE + snippet + EPILOGUE, db_url)
    assert result.returncode == 0, result.stderr
    assert "pipeline went on" in result.stdout
    assert "Traceback" not in result.stderr
    db = Db(db_url)
    run = db.run()
    assert run["outcome"] != "running"
    return db, run, result


def errors_of(db, run):
    return [e for e in db.errors(run["id"]) if e["step_name"] != "crash"]


def test_none_message_is_recorded_as_no_message(tmp_path, db_url):
    """record_error with error_message=None stores '(no message)'."""
    db, run, _ = run_input(tmp_path, db_url, "t.record_error(step_name='s', error_message=None)\n")
    assert [e["error_message"] for e in errors_of(db, run)] == ["(no message)"]


def test_bytes_message_is_decoded_with_invalid_bytes_replaced(tmp_path, db_url):
    """bytes (with invalid UTF-8) become text."""
    db, run, _ = run_input(tmp_path, db_url, "t.record_error(step_name='s', error_message=b'caf\\xc3\\xa9 \\xff!')\n")
    assert errors_of(db, run)[0]["error_message"] == "café \ufffd!"


def test_one_megabyte_message_and_stack_are_truncated(tmp_path, db_url):
    """A 1 MB message is cut to 2000 characters, a 1 MB stack to 4000, both marked as truncated."""
    db, run, _ = run_input(tmp_path, db_url,
                           "t.record_error(step_name='s', error_message='m' * 2**20, error_stack='s' * 2**20)\n")
    error = errors_of(db, run)[0]
    assert len(error["error_message"]) == 2000 and error["error_message"].endswith("…[truncated]")
    assert len(error["error_stack"]) == 4000 and error["error_stack"].endswith("…[truncated]")


def test_nul_bytes_and_lone_surrogates_are_replaced(tmp_path, db_url):
    """NUL bytes and lone surrogates (which PostgreSQL and UTF-8 reject) are replaced, the rest kept."""
    db, run, _ = run_input(tmp_path, db_url,
                           "t.record_error(step_name='s\\x00x', member_identifier='\\ud800id', "
                           "error_message='a\\x00b\\udcffc')\n")
    error = errors_of(db, run)[0]
    assert error["error_message"] == "a\ufffdb?c"
    assert error["step_name"] == "s\ufffdx" and error["member_identifier"] == "?id"


def test_unknown_outcome_is_recorded_as_failure_with_a_warning(tmp_path, db_url):
    """end_run('weird') is stored as failure; end_step('maybe') likewise; a warning is logged."""
    snippet = "t.end_step(step, 'maybe')\nt.end_run('weird')\nprint('pipeline went on')\nraise SystemExit(0)\n"
    result = run_app(tmp_path, PRELUDE + snippet, db_url)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "unknown run outcome 'weird'" in result.stderr and "unknown step outcome 'maybe'" in result.stderr
    db = Db(db_url)
    run = db.run()
    assert run["outcome"] == "failure"
    assert db.steps(run["id"])[0]["outcome"] == "failure"


def test_true_and_false_outcomes_mean_success_and_failure(tmp_path, db_url):
    """end_run(True) is success, end_step(False) is failure (seed compatibility)."""
    snippet = "t.end_step(step, False)\nt.end_run(True)\nraise SystemExit(0)\n"
    result = run_app(tmp_path, PRELUDE + snippet, db_url)
    assert result.returncode == 0 and result.stderr == ""
    db = Db(db_url)
    run = db.run()
    assert run["outcome"] == "success" and db.steps(run["id"])[0]["outcome"] == "failure"


def test_negative_and_non_numeric_counts_become_zero(tmp_path, db_url):
    """Negative, NaN and non-numeric counts are stored as 0; floats and numeric strings as ints."""
    snippet = ("t.end_step(step, 'success', created=-5, updated='lots', skipped=float('nan'), failed=2.7)\n"
               "step = t.start_step('second')\nt.end_step(step, 'success', created='12', updated=None)\n")
    db, run, result = run_input(tmp_path, db_url, snippet)
    steps = db.steps(run["id"])
    assert [(s["created_count"], s["updated_count"], s["skipped_count"], s["failed_count"]) for s in steps] == [
        (0, 0, 0, 2), (12, 0, 0, 0)]
    assert (run["total_created"], run["total_failed"]) == (12, 2)
    assert "is negative" in result.stderr and "is not a number" in result.stderr


def test_stats_that_are_not_json_serialisable_or_self_referencing_are_stored(tmp_path, db_url):
    """Stats with a set, an object, bytes and a reference to themselves become valid JSON."""
    snippet = ("stats = {'ids': {3}, 'obj': object(), 'raw': b'x', 'inf': float('inf')}\n"
               "stats['me'] = stats\n"
               "t.end_step(step, 'success')\nt.end_run('success', stats)\nprint('pipeline went on')\n")
    result = run_app(tmp_path, PRELUDE + snippet, db_url)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    run = Db(db_url).run()
    assert run["outcome"] == "success"
    summary = json.loads(run["summary_json"])
    assert summary["ids"] == [3] and summary["me"] == "<cycle>" and summary["raw"] == "x"
    assert summary["obj"].startswith("<object object") and summary["inf"] == "inf"


def test_end_step_on_unknown_id_is_ignored_with_a_warning(tmp_path, db_url):
    """end_step(999999) and end_step('x') change nothing and raise nothing."""
    db, run, result = run_input(tmp_path, db_url, "t.end_step(999999, 'success')\nt.end_step('x')\n")
    assert "end_step on unknown step id 999999" in result.stderr
    assert [s["outcome"] for s in db.steps(run["id"])] == ["success"]


def test_error_on_unknown_step_id_is_kept_without_the_link(tmp_path, db_url):
    """record_error against a step id that is not this run's keeps the error, without the step link."""
    db, run, _ = run_input(tmp_path, db_url, "t.record_error(step_name='s', step_id=424242, error_message='e')\n")
    error = errors_of(db, run)[0]
    assert error["run_step_id"] is None and error["error_message"] == "e"


def test_record_errors_accepts_lists_of_dicts_exceptions_strings_and_counts(tmp_path, db_url):
    """record_errors: dicts (seed and snake_case keys), exceptions, strings, a count, None and junk."""
    snippet = """
try:
    raise ValueError("bad row")
except ValueError as exc:
    caught = exc
t.record_errors("s", step, [
    {"memberIdentifier": "M1", "errorMessage": "seed keys"},
    {"member_identifier": "M2", "message": "snake keys", "stack": "at x"},
    caught, "plain string", 42,
])
t.record_errors("s", step, 3)
t.record_errors("s", step, 0)
t.record_errors("s", step, None)
t.record_errors("s", step, "just one")
"""
    db, run, _ = run_input(tmp_path, db_url, snippet)
    rows = [(e["member_identifier"], e["error_message"]) for e in errors_of(db, run)]
    assert rows == [("M1", "seed keys"), ("M2", "snake keys"), (None, "ValueError: bad row"),
                    (None, "plain string"), (None, "42"), (None, "3 errors"), (None, "just one")]
    assert "ValueError: bad row" in errors_of(db, run)[2]["error_stack"]


def test_calls_without_a_run_are_ignored(tmp_path, db_url):
    """start_step, record_error, end_step and end_run without start_run do nothing and raise nothing."""
    code = """
from runtracker import RunTracker
t = RunTracker("nikki")
s = t.start_step("x"); t.record_error(error_message="e"); t.end_step(s); print(t.end_run("success"))
t.close(); t.close()
"""
    result = run_app(tmp_path, code, db_url)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stdout.strip() == "False"
    assert "without an open run" in result.stderr
    assert Db(db_url).runs() == []


UNUSABLE = """
import os, sys
from runtracker import RunTracker
t = RunTracker("nikki", db=sys.argv[1])
print("run", t.start_run())
s = t.start_step("x"); t.record_error(error_message="e"); t.end_step(s, "success"); t.end_run("success")
print("pipeline went on")
sys.exit(4)
"""


@pytest.mark.parametrize("where", ["missing_dir_under_a_file", "unwritable_dir"])
def test_unusable_database_location_does_not_break_the_pipeline(tmp_path, sqlite_url, where):
    """A database that cannot be created: the pipeline runs to its end with its own exit code."""
    import os

    if where == "missing_dir_under_a_file":
        (tmp_path / "file").write_text("")
        target = tmp_path / "file" / "sub" / "db.sqlite"  # a directory cannot be created under a file
    else:
        locked = tmp_path / "ro"
        locked.mkdir()
        os.chmod(locked, 0o500)
        target = locked / "sub" / "db.sqlite"
        if os.geteuid() == 0:  # root ignores permission bits: use a read-only bind of /proc instead
            target = "/proc/runtracker-test/db.sqlite"
    result = run_app(tmp_path, UNUSABLE, sqlite_url, args=[str(target)])
    assert result.returncode == 4
    assert "run None" in result.stdout and "pipeline went on" in result.stdout
    assert "Traceback" not in result.stderr
    assert "RunTracker.start_run failed" in result.stderr
    assert result.stderr.count("without an open run") == 1  # said once, not once per call


def test_locked_database_does_not_break_the_pipeline(tmp_path, sqlite_url):
    """Another process holds the write lock for longer than the busy timeout: calls give up, the pipeline goes on."""
    import sqlite3

    path = sqlite_url[len("sqlite:///"):]
    code = """
import sys
import runtracker.storage.sqlite as s
s.BUSY_TIMEOUT_S = 0.2   # so the test does not wait 10 s per call
from runtracker import RunTracker
t = RunTracker("nikki")
print("run", t.start_run())
t.end_run("success")
print("pipeline went on")
sys.exit(5)
"""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    from runtracker.storage.sqlite import SQLiteStore

    SQLiteStore(path).upgrade_schema()
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = run_app(tmp_path, code, sqlite_url)
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    assert result.returncode == 5
    assert "run None" in result.stdout and "pipeline went on" in result.stdout
    assert "database is locked" in result.stderr and "Traceback" not in result.stderr


def test_disk_full_does_not_break_the_pipeline(tmp_path, sqlite_url):
    """Writes beyond the file-size limit fail (EFBIG): errors are logged, the pipeline ends with its own code."""
    code = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from runtracker import RunTracker
t = RunTracker("nikki")
t.start_run()
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
s = t.start_step("big")
for _ in range(20):
    t.record_errors("big", s, ["x" * 1900] * 100)
t.end_step(s, "success"); t.end_run("success")
print("pipeline went on")
sys.exit(6)
"""
    result = run_app(tmp_path, code, sqlite_url)
    assert result.returncode == 6 and "pipeline went on" in result.stdout
    assert "RunTracker.record_errors failed" in result.stderr and "Traceback" not in result.stderr
