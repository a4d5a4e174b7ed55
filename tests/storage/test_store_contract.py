"""The storage seam's contract, the same on every backend: what each Store method writes, returns and refuses."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from helpers import Db, app_env, open_fresh
from runtracker.storage import RunEnd, StepEnd, schema

T0 = "2026-01-01T00:00:00.000Z"
T1 = "2026-01-01T00:00:01.000Z"


def new_run(store, pipeline="nikki", started_at=T0):
    return store.insert_run(pipeline=pipeline, club_slug="rondo", started_at=started_at, hostname="h1", pid=123,
                            process_started_at=1.5, retention_cutoff=None)


def error(run_id, step_id=None, message="boom", at=T1):
    return (run_id, step_id, "rondo", "sync", "KNVB1", message, "stack", at)


def test_migrate_creates_the_latest_schema_once_and_is_idempotent(db_url):
    """A fresh database is migrated to the latest version; migrating again changes nothing."""
    store = open_fresh(db_url)
    assert store.schema_version() == schema.LATEST
    assert store.migrate() == schema.LATEST
    versions = [r["version"] for r in store.read("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m.version for m in schema.MIGRATIONS]
    store.close()


def test_a_database_at_version_1_is_upgraded_without_losing_rows(db_url):
    """Rows written at schema version 1 survive the upgrade and gain the new columns."""
    store = open_fresh(db_url)
    with store.transaction() as cur:  # back to version 1: drop what later versions added
        cur.execute("DROP TABLE run_errors")
        cur.execute("DROP TABLE run_steps")
        cur.execute("DROP TABLE runs")
        cur.execute("DELETE FROM schema_migrations WHERE version > 1")
        for statement in schema.statements(schema.MIGRATIONS[0], store.dialect):
            cur.execute(statement)
        cur.execute(store._sql("INSERT INTO runs (pipeline, started_at, outcome) VALUES (?, ?, ?)"),
                    ("old", T0, "success"))
    store.close()
    store = open_fresh(db_url)
    assert store.schema_version() == schema.LATEST
    (run,) = store.list_runs()
    assert (run["pipeline"], run["outcome"], run["hostname"]) == ("old", "success", None)
    store.close()


def test_several_processes_migrating_at_once_apply_each_migration_once(db_url):
    """Six processes opening a fresh database at the same moment all succeed; each version is recorded once."""
    code = (
        "import sys, time; from runtracker.storage import open_store\n"
        "start = float(sys.argv[1])\n"
        "while time.time() < start: pass\n"
        "open_store().insert_run(pipeline='p', club_slug=None, started_at='2026-01-01T00:00:00.000Z',"
        " hostname=None, pid=None, process_started_at=None, retention_cutoff=None)\n"
    )
    start = str(time.time() + 1.0)
    procs = [subprocess.Popen([sys.executable, "-c", code, start], env=app_env(db_url), stderr=subprocess.PIPE,
                              text=True) for _ in range(6)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    assert results == [(0, "")] * 6
    db = Db(db_url)
    versions = [r["version"] for r in db.query("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m.version for m in schema.MIGRATIONS]
    assert len(db.runs()) == 6


def test_insert_run_returns_increasing_ids_of_running_rows(db_url):
    """insert_run stores a `running` row with its ownership facts and a first heartbeat."""
    store = open_fresh(db_url)
    a, b = new_run(store), new_run(store, "other")
    assert b > a
    run = store.get_run(a)
    assert (run["outcome"], run["hostname"], run["pid"], run["process_started_at"]) == ("running", "h1", 123, 1.5)
    assert run["heartbeat_at"] == run["started_at"] == T0
    assert [r["id"] for r in store.running_runs()] == [a, b]
    assert store.get_run(b + 1000) is None
    store.close()


def test_steps_and_errors_are_stored_and_listed_in_order(db_url):
    """insert_step / end_step / insert_errors, read back by list_steps, list_errors and count_errors."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    s1 = store.insert_step(run_id=run_id, club_slug="rondo", step_name="download", started_at=T0)
    s2 = store.insert_step(run_id=run_id, club_slug="rondo", step_name="sync", started_at=T0)
    assert store.end_step(StepEnd(s1, "success", T1, 1000, created=4, updated=3, skipped=2, failed=1,
                                  detail_json='{"pct": "100%"}'))
    assert not store.end_step(StepEnd(s2 + 1000, "success", T1, 1))
    store.insert_errors([error(run_id, s2, f"e{i} 50% done?") for i in range(30)])
    store.insert_errors([])
    steps = store.list_steps(run_id)
    assert [s["step_name"] for s in steps] == ["download", "sync"]
    assert (steps[0]["outcome"], steps[0]["created_count"], steps[0]["failed_count"]) == ("success", 4, 1)
    assert steps[0]["detail_json"] == '{"pct": "100%"}' and steps[1]["outcome"] is None
    errors = store.list_errors(run_id, limit=5)
    assert [e["error_message"] for e in errors] == [f"e{i} 50% done?" for i in range(5)]
    assert errors[0]["run_step_id"] == s2 and store.count_errors(run_id) == 30
    store.close()


def test_end_run_sums_step_counts_and_ends_open_steps_and_errors_in_one_call(db_url):
    """end_run writes totals from the steps, ends the steps it is given and adds its error rows."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    s1 = store.insert_step(run_id=run_id, club_slug="rondo", step_name="a", started_at=T0)
    s2 = store.insert_step(run_id=run_id, club_slug="rondo", step_name="b", started_at=T0)
    store.end_step(StepEnd(s1, "success", T1, 5, created=10, updated=1))
    ended = store.end_run(RunEnd(run_id, "partial", T1, 1000, '{"n": 1}', 0),
                          [StepEnd(s2, "partial", T1, 7, created=5, failed=2)], [error(run_id, s2)])
    assert ended
    run = store.get_run(run_id)
    assert (run["outcome"], run["finished_at"], run["duration_ms"], run["summary_json"], run["exit_code"]) == (
        "partial", T1, 1000, '{"n": 1}', 0)
    assert (run["total_created"], run["total_updated"], run["total_skipped"], run["total_failed"]) == (15, 1, 0, 2)
    assert [s["outcome"] for s in store.list_steps(run_id)] == ["success", "partial"]
    assert store.count_errors(run_id) == 1 and store.running_runs() == []
    store.close()


def test_end_run_is_compare_and_set_and_changes_nothing_once_ended(db_url):
    """A second end of the same run returns False and writes neither its steps nor its errors."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    step = store.insert_step(run_id=run_id, club_slug="rondo", step_name="a", started_at=T0)
    assert store.end_run(RunEnd(run_id, "success", T1, 1))
    assert not store.end_run(RunEnd(run_id, "failure", T1, 2), [StepEnd(step, "failure", T1, 1)],
                             [error(run_id, None, "late")])
    assert not store.end_run(RunEnd(run_id + 1000, "failure", T1, 2))
    assert store.get_run(run_id)["outcome"] == "success"
    assert store.list_steps(run_id)[0]["outcome"] is None and store.count_errors(run_id) == 0
    store.close()


def test_end_runs_crashed_ends_only_runs_still_running(db_url):
    """The crash path ends several runs in one call and reports which ones it ended."""
    store = open_fresh(db_url)
    a, b, c = new_run(store), new_run(store), new_run(store)
    store.end_run(RunEnd(b, "success", T1, 1))
    done = store.end_runs_crashed([(RunEnd(r, "failure", T1, 9, '{"crash": true}'), [], [error(r, None, "crash")])
                                   for r in (a, b, c)])
    assert done == [a, c]
    assert [store.get_run(r)["outcome"] for r in (a, b, c)] == ["failure", "success", "failure"]
    assert [store.count_errors(r) for r in (a, b, c)] == [1, 0, 1]
    store.close()


def test_touch_heartbeat_moves_only_running_runs(db_url):
    """touch_heartbeat updates heartbeat_at of the given runs that are still running."""
    store = open_fresh(db_url)
    a, b = new_run(store), new_run(store)
    store.end_run(RunEnd(b, "success", T1, 1))
    store.touch_heartbeat([a, b], "2026-01-01T00:00:09.000Z")
    store.touch_heartbeat([], "2030-01-01T00:00:00.000Z")
    assert store.get_run(a)["heartbeat_at"] == "2026-01-01T00:00:09.000Z"
    assert store.get_run(b)["heartbeat_at"] == T0
    store.close()


def test_retention_deletes_finished_runs_before_the_cutoff_with_children(db_url):
    """delete_runs_before removes old finished runs, their steps and errors; running and newer runs stay."""
    store = open_fresh(db_url)
    old, stuck, new = new_run(store), new_run(store), new_run(store, started_at="2026-06-01T00:00:00.000Z")
    for run_id in (old, new):
        step = store.insert_step(run_id=run_id, club_slug=None, step_name="s", started_at=T0)
        store.insert_errors([error(run_id, step)])
        store.end_run(RunEnd(run_id, "success", T1, 1))
    assert store.delete_runs_before("2026-03-01T00:00:00.000Z") == 1
    assert [r["id"] for r in store.list_runs()] == [new, stuck]
    assert store.list_steps(old) == [] and store.count_errors(old) == 0
    assert store.count_errors(new) == 1
    store.close()


def test_list_runs_filters_and_pages_newest_first(db_url):
    """list_runs filters by pipeline and outcome, limits, and pages backwards with before_id."""
    store = open_fresh(db_url)
    ids = [new_run(store, "nikki" if i % 2 else "laposta") for i in range(7)]
    store.end_run(RunEnd(ids[1], "failure", T1, 1))
    assert [r["id"] for r in store.list_runs(limit=3)] == ids[::-1][:3]
    assert [r["id"] for r in store.list_runs(limit=3, before_id=ids[4])] == [ids[3], ids[2], ids[1]]
    assert [r["id"] for r in store.list_runs(pipeline="nikki")] == [ids[5], ids[3], ids[1]]
    assert [r["id"] for r in store.list_runs(pipeline="nikki", outcome="failure")] == [ids[1]]
    store.close()


@contextmanager
def holding_the_run(url, run_id):
    """Another connection blocks writers of the run until the block ends (SQLite: the write lock; PostgreSQL:
    the run's row)."""
    store = open_fresh(url)
    with store.transaction() as cur:
        cur.execute(store._sql("UPDATE runs SET heartbeat_at = heartbeat_at WHERE id = ?"), (run_id,))
        yield
    store.close()


def test_two_enders_racing_leave_one_consistent_record(db_url):
    """Two stores ending the same run at the same moment: one wins; only the winner's steps and errors exist."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    step = store.insert_step(run_id=run_id, club_slug=None, step_name="s", started_at=T0)
    store.close()
    results: dict[str, bool] = {}

    def end(outcome):
        s = open_fresh(db_url)
        results[outcome] = s.end_run(RunEnd(run_id, outcome, T1, 1), [StepEnd(step, outcome, T1, 1)],
                                     [error(run_id, step, outcome)])
        s.close()

    with holding_the_run(db_url, run_id):
        threads = [threading.Thread(target=end, args=(o,)) for o in ("success", "failure")]
        for t in threads:
            t.start()
        threads[0].join(0.5)
    for t in threads:
        t.join(30)
    assert sorted(results.values()) == [False, True]
    winner = next(o for o, won in results.items() if won)
    db = Db(db_url)
    assert db.run(run_id)["outcome"] == winner
    assert [s["outcome"] for s in db.steps(run_id)] == [winner]
    assert [e["error_message"] for e in db.errors(run_id)] == [winner]
