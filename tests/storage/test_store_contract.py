"""The storage seam's contract, the same on every backend: what each Store method writes, returns and refuses."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest

from helpers import Db, app_env, open_fresh
from runtracker.storage import ALREADY_ENDED, ENDED, OVERRODE_REAPER, RunEnd, StepEnd, schema

T0 = "2026-01-01T00:00:00.000Z"
T1 = "2026-01-01T00:00:01.000Z"


def new_run(store, pipeline="nikki", started_at=T0):
    return store.insert_run(pipeline=pipeline, club_slug="rondo", started_at=started_at, hostname="h1", pid=123,
                            process_started_at=1.5, retention_cutoff=None)


def error(run_id, step_id=None, message="boom", at=T1):
    return (run_id, step_id, "rondo", "sync", "KNVB1", message, "stack", at)


def end(store, run_id, outcome="success", *, step_outcome=None, message=None, by_owner=True, reaped=None,
        summary_json=None, exit_code=None, seen=None):
    """End a run through Store.end_run with an end built from the facts: open steps end `step_outcome`, and
    `message` adds one error row. `seen` collects the facts the build was given."""

    def build(facts):
        if seen is not None:
            seen.append(facts)
        steps = [StepEnd(s["id"], step_outcome or outcome, T1, 7) for s in facts.open_steps]
        errors = [error(run_id, None, message)] if message else []
        return RunEnd(outcome, T1, 1000, summary_json, exit_code, steps, errors, reaped)

    return store.end_run(run_id, build, by_owner=by_owner)


def test_migrate_creates_the_latest_schema_once_and_is_idempotent(db_url):
    """A fresh database is migrated to the latest version; migrating again changes nothing."""
    store = open_fresh(db_url)
    assert store.schema_version() == schema.LATEST
    assert store.upgrade_schema() == schema.LATEST
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
        cur.execute(store.sql("INSERT INTO runs (pipeline, started_at, outcome) VALUES (?, ?, ?)"),
                    ("old", T0, "success"))
    store.close()
    store = open_fresh(db_url)
    assert store.schema_version() == schema.LATEST
    (run,) = store.list_runs()
    assert (run["pipeline"], run["outcome"], run["hostname"]) == ("old", "success", None)
    store.close()


@pytest.mark.subprocess
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


def test_store_calls_inside_a_transaction_commit_with_it_or_roll_back_with_it(db_url):
    """Inside `with store.transaction():` each store call is a savepoint: nothing is visible to another
    connection before the enclosing commit, and an error of the enclosing block undoes every call in it."""
    store, other = open_fresh(db_url), open_fresh(db_url)
    try:
        run_id = new_run(store)
        with store.transaction():
            store.insert_step(run_id=run_id, club_slug="rondo", step_name="sync", started_at=T0)
            store.insert_errors([error(run_id)])
            assert len(store.list_steps(run_id)) == 1  # its own writes are seen inside it
            assert other.list_steps(run_id) == [] and other.count_errors(run_id) == 0
        assert len(other.list_steps(run_id)) == 1 and other.count_errors(run_id) == 1
        with pytest.raises(RuntimeError), store.transaction():
            store.insert_step(run_id=run_id, club_slug="rondo", step_name="load", started_at=T1)
            assert end(store, run_id) == ENDED
            raise RuntimeError("after the writes")
        assert [s["step_name"] for s in other.list_steps(run_id)] == ["sync"]
        assert other.get_run(run_id)["outcome"] == "running" and other.count_errors(run_id) == 1
    finally:
        store.close()
        other.close()


def test_a_store_call_failing_inside_a_transaction_rolls_back_alone(db_url):
    """A nested call that fails undoes only its own writes; the enclosing transaction goes on and commits."""
    store = open_fresh(db_url)
    try:
        run_id = new_run(store)
        with store.transaction():
            store.insert_errors([error(run_id, message="kept")])
            with pytest.raises(Exception), store.transaction() as cur:  # noqa: B017 (each driver its own error)
                store.insert_errors([error(run_id, message="undone")])
                cur.execute("SELECT no_such_column FROM runs")
            store.insert_errors([error(run_id, message="after")])
        assert [e["error_message"] for e in store.list_errors(run_id)] == ["kept", "after"]
    finally:
        store.close()


def test_steps_and_errors_are_stored_and_listed_in_order(db_url):
    """insert_step / end_step / insert_errors, read back by list_steps, list_errors and count_errors."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    s1 = store.insert_step(run_id=run_id, club_slug="rondo", step_name="download", started_at=T0)
    s2 = store.insert_step(run_id=run_id, club_slug="rondo", step_name="sync", started_at=T0)
    assert store.end_step(run_id, StepEnd(s1, "success", T1, 1000, created=4, updated=3, skipped=2, failed=1,
                                  detail_json='{"pct": "100%"}'))
    assert not store.end_step(run_id, StepEnd(s2 + 1000, "success", T1, 1))
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
    """end_run writes totals from the steps, ends the steps still open (and only those) and adds error rows."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    s1 = store.insert_step(run_id=run_id, club_slug="rondo", step_name="a", started_at=T0)
    s2 = store.insert_step(run_id=run_id, club_slug="rondo", step_name="b", started_at=T0)
    store.end_step(run_id, StepEnd(s1, "success", T1, 5, created=10, updated=1, failed=2))
    seen = []
    assert end(store, run_id, "partial", step_outcome="failure", message="crash", summary_json='{"n": 1}',
               exit_code=0, seen=seen) == ENDED
    assert [s["id"] for s in seen[0].open_steps] == [s2] and seen[0].run["outcome"] == "running"
    run = store.get_run(run_id)
    assert (run["outcome"], run["finished_at"], run["duration_ms"], run["summary_json"], run["exit_code"]) == (
        "partial", T1, 1000, '{"n": 1}', 0)
    assert (run["total_created"], run["total_updated"], run["total_skipped"], run["total_failed"]) == (10, 1, 0, 2)
    assert run["ended_by"] == "owner" and run["reaped_at"] is None
    assert [s["outcome"] for s in store.list_steps(run_id)] == ["success", "failure"]
    assert store.count_errors(run_id) == 1 and store.running_runs() == []
    store.close()


def test_end_run_is_compare_and_set_and_changes_nothing_once_ended(db_url):
    """A second end of the same run writes neither its steps nor its errors and says it had already ended."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    assert end(store, run_id, "success") == ENDED
    step = store.insert_step(run_id=run_id, club_slug="rondo", step_name="late", started_at=T1)
    assert step is None  # an ended run takes no new steps
    assert end(store, run_id, "failure", message="late") == ALREADY_ENDED
    assert end(store, run_id + 1000, "failure") == ALREADY_ENDED
    assert store.get_run(run_id)["outcome"] == "success"
    assert store.list_steps(run_id) == [] and store.count_errors(run_id) == 0
    store.close()


def test_the_owner_overrides_the_reapers_end_once_and_keeps_its_verdict(db_url):
    """A run the reaper ended is ended again by its owner (reaped_at, reap_reason and the reaper's rows stay);
    another reaper, or a second owner end, changes nothing."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    step = store.insert_step(run_id=run_id, club_slug="rondo", step_name="a", started_at=T0)
    verdict = (T1, "heartbeat_timeout")
    assert end(store, run_id, "failure", message="process lost", by_owner=False, reaped=verdict) == ENDED
    reaped = store.get_run(run_id)
    assert (reaped["ended_by"], reaped["reaped_at"], reaped["reap_reason"]) == ("reaper", T1, "heartbeat_timeout")
    assert end(store, run_id, "failure", message="again", by_owner=False, reaped=verdict) == ALREADY_ENDED
    assert store.end_step(run_id, StepEnd(step, "success", T1, 1000, created=3))  # the owner's step end wins too
    assert end(store, run_id, "success", summary_json='{"mine": true}') == OVERRODE_REAPER
    run = store.get_run(run_id)
    assert (run["outcome"], run["summary_json"], run["total_created"]) == ("success", '{"mine": true}', 3)
    assert (run["ended_by"], run["reaped_at"], run["reap_reason"]) == ("owner", T1, "heartbeat_timeout")
    assert end(store, run_id, "failure", message="late") == ALREADY_ENDED
    assert [e["error_message"] for e in store.list_errors(run_id)] == ["process lost"]
    store.close()


def test_an_acknowledged_step_end_is_never_rewritten_by_a_later_end(db_url):
    """end_step of a step that an end already closed returns False; an owner's own step end is not rewritten."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    done = store.insert_step(run_id=run_id, club_slug="rondo", step_name="done", started_at=T0)
    store.end_step(run_id, StepEnd(done, "success", T1, 1000, created=5))
    assert end(store, run_id, "failure", step_outcome="failure") == ENDED
    assert not store.end_step(run_id, StepEnd(done, "partial", T1, 1000, created=9))
    (step,) = store.list_steps(run_id)
    assert (step["outcome"], step["created_count"]) == ("success", 5)
    store.close()


def test_counts_beyond_the_maximum_left_by_another_writer_never_make_a_run_impossible_to_end(db_url):
    """Step counts above 2^31 - 1 written by hand are capped in the totals: the run still ends."""
    # PostgreSQL's count columns hold at most 2^31 - 1 themselves; three of them overflow a 32-bit total.
    huge, counted = (2_000_000_000, 2_000_000_000) if db_url.startswith("postgresql") else (9 * 10**18, 2**31 - 1)
    store = open_fresh(db_url)
    run_id = new_run(store)
    for _ in range(3):
        step = store.insert_step(run_id=run_id, club_slug="rondo", step_name="s", started_at=T0)
        with store.transaction() as cur:
            cur.execute(store.sql("UPDATE run_steps SET created_count = ?, finished_at = ? WHERE id = ?"),
                        (huge, T1, step))
    assert end(store, run_id, "success") == ENDED
    assert store.get_run(run_id)["total_created"] == 3 * counted
    store.close()


def test_touch_heartbeat_moves_only_running_runs(db_url):
    """touch_heartbeat updates heartbeat_at of the given runs that are still running."""
    store = open_fresh(db_url)
    a, b = new_run(store), new_run(store)
    end(store, b)
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
        end(store, run_id)
    assert store.delete_runs_before("2026-03-01T00:00:00.000Z") == 1
    assert [r["id"] for r in store.list_runs()] == [new, stuck]
    assert store.list_steps(old) == [] and store.count_errors(old) == 0
    assert store.count_errors(new) == 1
    store.close()


def test_list_runs_filters_and_pages_newest_first(db_url):
    """list_runs filters by pipeline and outcome, limits, and pages backwards with before_id."""
    store = open_fresh(db_url)
    ids = [new_run(store, "nikki" if i % 2 else "laposta") for i in range(7)]
    end(store, ids[1], "failure")
    assert [r["id"] for r in store.list_runs(limit=3)] == ids[::-1][:3]
    assert [r["id"] for r in store.list_runs(limit=3, before_id=ids[4])] == [ids[3], ids[2], ids[1]]
    assert [r["id"] for r in store.list_runs(pipeline="nikki")] == [ids[5], ids[3], ids[1]]
    assert [r["id"] for r in store.list_runs(pipeline="nikki", outcome="failure")] == [ids[1]]
    store.close()


def test_the_change_token_stays_while_nothing_commits_and_moves_with_every_commit(db_url):
    """change_token: equal across reads with no write in between; different after this store's own commit,
    after another connection's commit, and after one in another process."""
    store, other = open_fresh(db_url), open_fresh(db_url)
    run_id = new_run(store)
    token = store.change_token()
    store.list_runs()
    assert store.change_token() == token
    store.touch_heartbeat([run_id], T1)
    assert store.change_token() != token
    token = store.change_token()
    end(other, run_id, "failure")
    assert store.change_token() != token
    token = store.change_token()
    code = "import sys; from runtracker.storage import open_store; s = open_store(sys.argv[1]); " \
           "s.touch_heartbeat([1], '2026-01-01T00:00:02.000Z'); s.insert_run(pipeline='p', club_slug='c', " \
           "started_at='2026-01-01T00:00:02.000Z', hostname='h', pid=1, process_started_at=1.0, " \
           "retention_cutoff=None)"
    subprocess.run([sys.executable, "-c", code, db_url], check=True, env=app_env(db_url))
    assert store.change_token() != token
    store.close()
    other.close()


def test_the_dashboards_kept_reads_are_read_again_after_any_commit(db_url):
    """Dashboard.unchanged: a read is reused while nothing commits, and read anew after another connection's
    commit: the overview never shows a run as running once it ended."""
    from runtracker.storage.dashboard import Dashboard

    store, other = open_fresh(db_url), open_fresh(db_url)
    dash = Dashboard(store)
    run_id = new_run(other)
    reads = []

    def running():
        reads.append(1)
        return [r["id"] for r in dash.running_runs()]

    assert dash.unchanged("running", running) == [run_id]
    assert dash.unchanged("running", running) == [run_id]
    assert len(reads) == 1
    end(other, run_id, "success")
    assert dash.unchanged("running", running) == []
    assert len(reads) == 2
    store.close()
    other.close()


@contextmanager
def holding_the_run(url, run_id):
    """Another connection blocks writers of the run until the block ends (SQLite: the write lock; PostgreSQL:
    the run's row)."""
    store = open_fresh(url)
    with store.transaction() as cur:
        cur.execute(store.sql("UPDATE runs SET heartbeat_at = heartbeat_at WHERE id = ?"), (run_id,))
        yield
    store.close()


def test_two_enders_racing_leave_one_consistent_record(db_url):
    """Two stores ending the same run at the same moment: one wins; only the winner's steps and errors exist."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    store.insert_step(run_id=run_id, club_slug=None, step_name="s", started_at=T0)
    store.close()
    results: dict[str, str] = {}

    def race(outcome):
        s = open_fresh(db_url)
        results[outcome] = end(s, run_id, outcome, message=outcome)
        s.close()

    with holding_the_run(db_url, run_id):
        threads = [threading.Thread(target=race, args=(o,)) for o in ("success", "failure")]
        for t in threads:
            t.start()
        threads[0].join(0.5)
    for t in threads:
        t.join(30)
    assert sorted(results.values()) == [ALREADY_ENDED, ENDED]
    winner = next(o for o, result in results.items() if result == ENDED)
    db = Db(db_url)
    assert db.run(run_id)["outcome"] == winner
    assert [s["outcome"] for s in db.steps(run_id)] == [winner]
    assert [e["error_message"] for e in db.errors(run_id)] == [winner]
