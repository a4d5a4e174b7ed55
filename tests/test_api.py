"""The tracker's API in-process: the seed's calls, the Pythonic forms, configuration, retention, migrations."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import sys

import pytest

from helpers import Db, open_fresh
from runtracker import RunTracker, current_run, track
from runtracker.core import hooks
from runtracker.core.state import STATE
from runtracker.storage import Runs

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_start_run_inserts_a_running_run_with_ownership_facts(db_url):
    """start_run returns the id of a `running` row carrying hostname, pid, process start and heartbeat."""
    import os

    t = RunTracker("nikki", db=db_url)
    run_id = t.start_run()
    assert isinstance(run_id, int)
    run = Db(db_url).run(run_id)
    assert run["outcome"] == "running" and run["pipeline"] == "nikki" and run["club_slug"] == "rondo"
    assert run["pid"] == os.getpid() and run["hostname"] and run["process_started_at"] > 0
    assert ISO.match(run["started_at"]) and run["heartbeat_at"] == run["started_at"]
    t.end_run("success")


def test_every_call_that_returns_has_committed(db_url):
    """After each call, a separate connection already sees its write."""
    t = RunTracker("nikki", db=db_url)
    db = Db(db_url)
    run_id = t.start_run()
    assert db.run(run_id)["outcome"] == "running"
    step = t.start_step("download")
    assert [s["id"] for s in db.steps(run_id)] == [step]
    t.record_error(step_name="download", step_id=step, member_identifier="M1", error_message="nope")
    assert len(db.errors(run_id)) == 1
    t.record_errors("download", step, [{"message": "a"}, {"message": "b"}])
    assert len(db.errors(run_id)) == 3
    t.end_step(step, "partial", created=1, updated=2, skipped=3, failed=4, detail={"page": 7})
    row = db.steps(run_id)[0]
    assert (row["outcome"], row["created_count"], row["failed_count"]) == ("partial", 1, 4)
    assert json.loads(row["detail_json"]) == {"page": 7} and ISO.match(row["finished_at"])
    assert t.end_run("partial", {"members": 10}) is True
    run = db.run(run_id)
    assert (run["outcome"], run["total_created"], run["total_updated"], run["total_skipped"], run["total_failed"]) \
        == ("partial", 1, 2, 3, 4)
    assert json.loads(run["summary_json"]) == {"members": 10} and run["duration_ms"] >= 0


def test_end_run_ends_steps_left_open(db_url):
    """Steps still open at end_run are ended: partial after a success, failure after a failure."""
    t = RunTracker("nikki", db=db_url)
    run_id = t.start_run()
    t.start_step("forgotten")
    t.end_run("success")
    assert Db(db_url).steps(run_id)[0]["outcome"] == "partial"
    run_id = t.start_run()
    t.start_step("forgotten")
    t.end_run("failure")
    assert Db(db_url).steps(run_id)[0]["outcome"] == "failure"


def test_a_run_that_already_ended_is_not_changed_again(db_url):
    """A second end_run returns False and leaves the first outcome."""
    t = RunTracker("nikki", db=db_url)
    run_id = t.start_run()
    assert t.end_run("success") is True
    assert t.end_run("failure") is False
    assert Db(db_url).run(run_id)["outcome"] == "success"


def test_database_comes_from_argument_then_environment_then_default(tmp_path, monkeypatch):
    """db= wins; else $RUNTRACKER_DB; else ./data/dashboard.sqlite, directory created."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNTRACKER_DB", raising=False)
    RunTracker("a").start_run()
    assert (tmp_path / "data" / "dashboard.sqlite").exists()
    monkeypatch.setenv("RUNTRACKER_DB", str(tmp_path / "env.sqlite"))
    RunTracker("b").start_run()
    assert (tmp_path / "env.sqlite").exists()
    RunTracker("c", db=f"sqlite:///{tmp_path / 'url' / 'arg.sqlite'}").start_run()
    assert (tmp_path / "url" / "arg.sqlite").exists()
    assert [r["pipeline"] for r in Db(str(tmp_path / "env.sqlite")).runs()] == ["b"]


def _age_run(db_url: str, run_id: int, started_at: str) -> None:
    store = open_fresh(db_url)
    with store.transaction() as cur:
        cur.execute(store.sql("UPDATE runs SET started_at = ? WHERE id = ?"), (started_at, run_id))
    store.close()


def test_retention_deletes_old_runs_with_their_steps_and_errors(db_url):
    """start_run deletes finished runs older than retention_days, with steps and errors; running ones stay."""
    t = RunTracker("nikki", db=db_url, retention_days=3)
    old = t.start_run()
    step = t.start_step("s")
    t.record_error(step_name="s", step_id=step, error_message="e")
    t.end_run("success")
    stuck = RunTracker("stuck", db=db_url)
    stuck_id = stuck.start_run()
    recent = t.start_run()
    t.end_run("success")
    _age_run(db_url, old, "2020-01-01T00:00:00.000Z")
    _age_run(db_url, stuck_id, "2020-01-01T00:00:00.000Z")
    t.start_run()
    db = Db(db_url)
    ids = [r["id"] for r in db.runs()]
    assert old not in ids and recent in ids and stuck_id in ids
    assert db.steps(old) == [] and db.errors(old) == []
    t.end_run("success")
    stuck.end_run("success")


def test_retention_zero_keeps_everything(db_url):
    """retention_days=0 never deletes."""
    t = RunTracker("nikki", db=db_url, retention_days=0)
    old = t.start_run()
    t.end_run("success")
    _age_run(db_url, old, "2000-01-01T00:00:00.000Z")
    t.start_run()
    t.end_run("success")
    assert old in [r["id"] for r in Db(db_url).runs()]


def test_retention_and_running_lookups_use_indexes(sqlite_url):
    """The retention delete and the running-runs probe use an index, not a scan of runs."""
    RunTracker("nikki", db=sqlite_url).start_run()
    conn = sqlite3.connect(sqlite_url[len("sqlite:///"):])
    plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN DELETE FROM runs WHERE started_at < ? AND outcome <> 'running'", ("x",)))
    assert "idx_runs_started_at" in plan
    plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN SELECT id FROM runs WHERE outcome = 'running'"))
    assert "idx_runs_running" in plan
    plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN SELECT * FROM run_errors WHERE run_id = 1"))
    assert "idx_run_errors_run" in plan


SEED_SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, club_slug TEXT, pipeline TEXT NOT NULL,
  started_at TEXT NOT NULL, finished_at TEXT, duration_ms INTEGER,
  outcome TEXT NOT NULL CHECK (outcome IN ('success','failure','running','partial')),
  total_created INTEGER DEFAULT 0, total_updated INTEGER DEFAULT 0, total_skipped INTEGER DEFAULT 0,
  total_failed INTEGER DEFAULT 0, summary_json TEXT);
CREATE TABLE run_steps (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, club_slug TEXT,
  step_name TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT, duration_ms INTEGER,
  outcome TEXT CHECK (outcome IN ('success','failure','skipped','partial')), created_count INTEGER DEFAULT 0,
  updated_count INTEGER DEFAULT 0, skipped_count INTEGER DEFAULT 0, failed_count INTEGER DEFAULT 0,
  detail_json TEXT);
CREATE TABLE run_errors (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, run_step_id INTEGER,
  club_slug TEXT, step_name TEXT, member_identifier TEXT, error_message TEXT, error_stack TEXT,
  created_at TEXT NOT NULL);
INSERT INTO runs (club_slug, pipeline, started_at, finished_at, duration_ms, outcome, total_created)
  VALUES ('rondo', 'nikki', '2099-01-01T00:00:00.000Z', '2099-01-01T00:01:00.000Z', 60000, 'success', 7);
INSERT INTO run_steps (run_id, club_slug, step_name, started_at, outcome, created_count)
  VALUES (1, 'rondo', 'nikki-download', '2099-01-01T00:00:00.000Z', 'success', 7);
INSERT INTO run_errors (run_id, run_step_id, club_slug, step_name, error_message, created_at)
  VALUES (1, 1, 'rondo', 'nikki-download', 'old error', '2099-01-01T00:00:30.000Z');
"""


def test_a_database_made_by_the_seed_tool_is_upgraded_in_place(tmp_path):
    """A dashboard database from the original tool keeps its rows and gains the new columns and indexes."""
    path = tmp_path / "dashboard.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(SEED_SCHEMA)
    conn.close()
    t = RunTracker("nikki", db=str(path))
    new = t.start_run()
    t.end_run("success")
    db = Db(str(path))
    old = db.run(1)
    assert (old["pipeline"], old["outcome"], old["total_created"]) == ("nikki", "success", 7)
    assert db.steps(1)[0]["step_name"] == "nikki-download" and db.errors(1)[0]["error_message"] == "old error"
    assert db.run(new)["pid"] is not None
    versions = [r["version"] for r in db.query("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == list(range(1, versions[-1] + 1)) and len(versions) >= 2


def test_a_database_at_an_older_version_is_upgraded_without_losing_rows(tmp_path):
    """A database at schema version 1 (bookkeeping included) is brought to the latest version."""
    from runtracker.storage import schema
    from runtracker.storage.sqlite import SQLiteStore

    path = str(tmp_path / "v1.sqlite")
    store = SQLiteStore(path)
    with store.transaction() as cur:
        cur.execute(schema.BOOKKEEPING)
        for statement in schema.statements(schema.MIGRATIONS[0], "sqlite"):
            cur.execute(statement)
        cur.execute("INSERT INTO schema_migrations VALUES (1, 'seed', '2026-01-01T00:00:00.000Z')")
        cur.execute("INSERT INTO runs (pipeline, started_at, outcome) VALUES ('nikki', '2099-01-01T00:00:00.000Z',"
                    " 'success')")
    store.close()
    assert SQLiteStore(path).upgrade_schema() == 1
    store = SQLiteStore(path)
    assert store.schema_version() == schema.LATEST
    assert Runs(store).get_run(1)["pipeline"] == "nikki"
    assert store.upgrade_schema() == schema.LATEST  # idempotent
    store.close()


# -- the Pythonic forms ---------------------------------------------------------------------------------
def test_with_run_and_steps_records_counts_and_ends_success(db_url):
    """with tracker.run() / run.step(): counters and stats land; a clean block ends success."""
    with RunTracker("nikki", db=db_url).run() as run:
        with run.step("download") as step:
            step.created += 40
            step.detail = {"year": 2026}
        run.stats["contributions"] = 40
    db = Db(db_url)
    row = db.run(run.id)
    assert row["outcome"] == "success" and row["total_created"] == 40
    assert json.loads(row["summary_json"]) == {"contributions": 40}
    assert db.steps(run.id)[0]["outcome"] == "success"


def test_with_run_ends_partial_when_a_step_failed_items(db_url):
    """A step with failed items (or any recorded error) makes the automatic outcome partial."""
    with RunTracker("nikki", db=db_url).run() as run:
        with run.step("sync") as step:
            step.failed += 1
            step.error("member not found", member_identifier="M1")
    db = Db(db_url)
    assert db.run(run.id)["outcome"] == "partial" and db.steps(run.id)[0]["outcome"] == "partial"
    assert db.errors(run.id)[0]["member_identifier"] == "M1"


def test_exception_in_a_step_is_recorded_and_reraised(db_url):
    """An exception marks the step and the run failure, leaves an error and a crash row, and propagates."""
    tracker = RunTracker("nikki", db=db_url)
    with pytest.raises(ZeroDivisionError):
        with tracker.run() as run:
            with run.step("sync"):
                raise ZeroDivisionError("division by zero")
    db = Db(db_url)
    row = db.run(run.id)
    assert row["outcome"] == "failure" and json.loads(row["summary_json"])["kind"] == "exception"
    assert db.steps(run.id)[0]["outcome"] == "failure"
    errors = db.errors(run.id)
    assert [e["step_name"] for e in errors] == ["sync", "crash"]
    assert all("ZeroDivisionError" in e["error_message"] for e in errors)


@pytest.mark.parametrize(("code", "outcome", "exit_code"), [(0, "success", None), (None, "success", None),
                                                           (2, "failure", 2)])
def test_system_exit_inside_a_run(db_url, code, outcome, exit_code):
    """SystemExit(0) ends the run success; another code ends it failure with that exit code; it propagates."""
    tracker = RunTracker("nikki", db=db_url)
    with pytest.raises(SystemExit):
        with tracker.run() as run:
            raise SystemExit(code)
    row = Db(db_url).run(run.id)
    assert row["outcome"] == outcome and row["exit_code"] == exit_code


def test_keyboard_interrupt_inside_a_run_is_recorded_and_propagates(db_url):
    """Ctrl-C inside `with tracker.run()` ends the run failure (kind keyboard_interrupt) and re-raises."""
    with pytest.raises(KeyboardInterrupt):
        with RunTracker("nikki", db=db_url).run() as run:
            raise KeyboardInterrupt
    row = Db(db_url).run(run.id)
    assert row["outcome"] == "failure" and json.loads(row["summary_json"])["kind"] == "keyboard_interrupt"


def test_track_decorator_wraps_sync_functions(db_url):
    """@track: each call is a run; current_run() reaches it; the return value passes through."""
    @track("nikki", db=db_url)
    def pipeline(n):
        with current_run().step("sync") as step:
            step.updated = n
        return n * 2

    assert pipeline(5) == 10
    assert current_run() is None
    row = Db(db_url).run()
    assert (row["pipeline"], row["outcome"], row["total_updated"]) == ("nikki", "success", 5)


def test_track_decorator_wraps_async_functions_and_reraises(db_url):
    """@track on a coroutine function: the run spans the await; an exception fails it and propagates."""
    @track(db=db_url)
    async def nightly(fail):
        await asyncio.sleep(0)
        with current_run().step("sync") as step:
            step.created = 3
        if fail:
            raise RuntimeError("async boom")

    asyncio.run(nightly(False))
    with pytest.raises(RuntimeError):
        asyncio.run(nightly(True))
    runs = Db(db_url).runs()
    assert [(r["pipeline"], r["outcome"], r["total_created"]) for r in runs] == [
        ("nightly", "success", 3), ("nightly", "failure", 3)]


def test_close_is_idempotent_and_a_closed_tracker_can_start_again(db_url):
    """close() twice is fine; a tracker can start a new run after close()."""
    t = RunTracker("nikki", db=db_url)
    t.start_run()
    t.end_run("success")
    t.close()
    t.close()
    assert isinstance(t.start_run(), int)
    t.end_run("success")
    assert len(Db(db_url).runs()) == 2


def test_hooks_are_installed_once_however_many_trackers(db_url):
    """Ten trackers starting runs install each hook once, chaining the hook that was there before."""
    before = sys.excepthook
    trackers = [RunTracker(f"p{i}", db=db_url) for i in range(10)]
    for t in trackers:
        t.start_run()
    assert sys.excepthook is hooks._runtracker_excepthook
    assert STATE.hooks.previous["excepthook"] is before
    for t in trackers:
        t.end_run("success")
