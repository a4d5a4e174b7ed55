"""The storage seam's contract, the same on every backend: the schema and its upgrades, transactions (store
calls nested in one), and the change token that readers keep their reads by."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from runlib import T0, T1, end, error, new_run

from helpers import Db, app_env, open_fresh
from runtracker.storage import ENDED, Runs, schema


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
    (run,) = Runs(store).list_runs()
    assert (run["pipeline"], run["outcome"], run["hostname"]) == ("old", "success", None)
    store.close()


@pytest.mark.subprocess
def test_several_processes_migrating_at_once_apply_each_migration_once(db_url):
    """Six processes opening a fresh database at the same moment all succeed; each version is recorded once."""
    code = (
        "import sys, time; from runtracker.storage import Runs, open_store\n"
        "start = float(sys.argv[1])\n"
        "while time.time() < start: pass\n"
        "Runs(open_store()).insert_run(pipeline='p', club_slug=None, started_at='2026-01-01T00:00:00.000Z',"
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


def test_store_calls_inside_a_transaction_commit_with_it_or_roll_back_with_it(db_url):
    """Inside `with store.transaction():` each store call is a savepoint: nothing is visible to another
    connection before the enclosing commit, and an error of the enclosing block undoes every call in it."""
    store, other = open_fresh(db_url), open_fresh(db_url)
    try:
        run_id = new_run(store)
        with store.transaction():
            Runs(store).insert_step(run_id=run_id, club_slug="rondo", step_name="sync", started_at=T0)
            Runs(store).insert_errors([error(run_id)])
            assert len(Runs(store).list_steps(run_id)) == 1  # its own writes are seen inside it
            assert Runs(other).list_steps(run_id) == [] and Runs(other).count_errors(run_id) == 0
        assert len(Runs(other).list_steps(run_id)) == 1 and Runs(other).count_errors(run_id) == 1
        with pytest.raises(RuntimeError), store.transaction():
            Runs(store).insert_step(run_id=run_id, club_slug="rondo", step_name="load", started_at=T1)
            assert end(store, run_id) == ENDED
            raise RuntimeError("after the writes")
        assert [s["step_name"] for s in Runs(other).list_steps(run_id)] == ["sync"]
        assert Runs(other).get_run(run_id)["outcome"] == "running" and Runs(other).count_errors(run_id) == 1
    finally:
        store.close()
        other.close()


def test_a_store_call_failing_inside_a_transaction_rolls_back_alone(db_url):
    """A nested call that fails undoes only its own writes; the enclosing transaction goes on and commits."""
    store = open_fresh(db_url)
    try:
        run_id = new_run(store)
        with store.transaction():
            Runs(store).insert_errors([error(run_id, message="kept")])
            with pytest.raises(Exception), store.transaction() as cur:  # noqa: B017 (each driver its own error)
                Runs(store).insert_errors([error(run_id, message="undone")])
                cur.execute("SELECT no_such_column FROM runs")
            Runs(store).insert_errors([error(run_id, message="after")])
        assert [e["error_message"] for e in Runs(store).list_errors(run_id)] == ["kept", "after"]
    finally:
        store.close()


def test_the_change_token_stays_while_nothing_commits_and_moves_with_every_commit(db_url):
    """change_token: equal across reads with no write in between; different after this store's own commit,
    after another connection's commit, and after one in another process."""
    store, other = open_fresh(db_url), open_fresh(db_url)
    run_id = new_run(store)
    token = store.change_token()
    Runs(store).list_runs()
    assert store.change_token() == token
    Runs(store).touch_heartbeat([run_id], T1)
    assert store.change_token() != token
    token = store.change_token()
    end(other, run_id, "failure")
    assert store.change_token() != token
    token = store.change_token()
    code = "import sys; from runtracker.storage import Runs, open_store; s = Runs(open_store(sys.argv[1])); " \
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
