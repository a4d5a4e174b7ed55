"""Side by side with the original tool: one database, both writers, the original dashboard still reading it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

import original_tool as original
from helpers import Db, open_fresh
from runtracker import RunTracker
from runtracker.settings.values import resolve_db
from runtracker.storage import Runs, schema
from runtracker.storage.postgres import PostgresStore
from runtracker.storage.sqlite import SQLiteStore


def _iso(at: datetime) -> str:
    """The original's timestamps: JavaScript's toISOString(), milliseconds and a Z."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


# The original tool's run a few minutes before the test: inside every retention window, on any date the suite runs.
_NOW = datetime.now(UTC)
T0, T1, T2 = (_iso(_NOW - timedelta(minutes=m)) for m in (3, 2, 1))


def raw_store(url: str):
    """A store on the database as it is: nothing created, nothing upgraded."""
    target = resolve_db(url).target
    return PostgresStore(target) if url.startswith("postgresql") else SQLiteStore(target)


def definitions(store) -> dict[str, dict[str, tuple[bool, str | None]]]:
    """{table: {column: (nullable, default)}} of the seed's columns, as the database reports them."""
    found = {}
    for table, columns in ((t, c) for t, c in original_columns().items()):
        if store.dialect == "sqlite":
            rows = store.read(f"PRAGMA table_info({table})")
            info = {r["name"]: (not r["notnull"] and not r["pk"], r["dflt_value"]) for r in rows}
        else:
            rows = store.read("SELECT column_name, is_nullable, column_default FROM information_schema.columns"
                              " WHERE table_schema = current_schema() AND table_name = ?", (table,))
            info = {r["column_name"]: (r["is_nullable"] == "YES", _pg_default(r["column_default"])) for r in rows}
        found[table] = {column: info[column] for column in columns}
    return found


def _pg_default(default: str | None) -> str | None:
    if default is None or default.startswith("nextval(") or "generated" in default.lower():
        return None
    return default.replace("::text", "")


def original_columns() -> dict[str, dict[str, tuple[bool, str | None]]]:
    """The original's definitions, read from its own CREATE statements in a scratch SQLite database."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(original.SCHEMA)
    tables = {}
    for table in ("runs", "run_steps", "run_errors"):
        rows = conn.execute(f"PRAGMA table_info({table})").fetchall()
        tables[table] = {name: (not notnull and not pk, default) for _, name, _, notnull, default, pk in rows}
    conn.close()
    return tables


def indexes(store) -> dict[str, list[str]]:
    if store.dialect == "sqlite":
        rows = store.read("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        names = [r["name"] for r in rows]
        return {n: [r["name"] for r in store.read(f"PRAGMA index_info({n})")] for n in names}
    rows = store.read("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()")
    return {r["indexname"]: [c.strip() for c in r["indexdef"].split("(", 1)[1].split(")")[0].split(",")]
            for r in rows}


ORIGINAL_INDEXES = {
    "idx_runs_club_pipeline": ["club_slug", "pipeline", "started_at"],
    "idx_run_steps_run_id": ["run_id"],
    "idx_run_errors_run_id": ["run_id"],
    "idx_run_errors_club_step": ["club_slug", "step_name", "created_at"],
}


def test_a_database_runtracker_creates_has_the_original_tools_definitions_and_indexes(db_url):
    """club_slug NOT NULL DEFAULT 'rondo' on all three tables, NOT NULL step_name and error_message, counts with
    DEFAULT 0, and the original's four indexes under its names."""
    store = open_fresh(db_url)
    assert definitions(store) == original_columns()
    found = indexes(store)
    assert {name: found.get(name) for name in ORIGINAL_INDEXES} == ORIGINAL_INDEXES
    store.close()


def test_the_original_tools_writes_on_our_database_show_in_its_dashboard(db_url):
    """Its INSERTs (which name no club_slug) work on a database runtracker made, and its dashboard — every
    query filtered on club 'rondo' — sees its runs, steps and errors, and runtracker's too."""
    store = open_fresh(db_url)
    node = original.OriginalTracker(store, "laposta")
    run_id = node.start_run(T0)
    assert original.dashboard(store, original.IS_RUNNING, "laposta")[0]["n"] == 1  # its Start button is disabled
    step = node.start_step("laposta-sync", T0)
    node.record_error(step, "laposta-sync", "member not found", T1, member="KNVB1004")
    node.end_step(step, T1, "partial", created=3, failed=1)
    node.end_run(T2, "partial")
    ours = RunTracker("nikki", db=db_url)
    ours.start_run()
    ours.record_error(error_message="no step")
    ours.end_run("partial")
    assert original.dashboard(store, original.IS_RUNNING, "laposta")[0]["n"] == 0
    latest = original.dashboard(store, original.LATEST_RUN, "laposta")[0]
    assert (latest["id"], latest["outcome"], latest["total_created"], latest["club_slug"]) == (
        run_id, "partial", 3, "rondo")
    assert [r["id"] for r in original.dashboard(store, original.HISTORY, "laposta", 0)] == [run_id]
    assert [s["step_name"] for s in original.dashboard(store, original.RUN_STEPS, run_id)] == ["laposta-sync"]
    errors = original.dashboard(store, original.ERRORS)
    assert sorted((e["pipeline"], e["step_name"], e["error_message"]) for e in errors) == [
        ("laposta", "laposta-sync", "member not found"), ("nikki", "(run)", "no step")]
    assert original.dashboard(store, original.LATEST_RUN, "nikki")[0]["outcome"] == "partial"
    store.close()


@pytest.fixture
def original_db(tmp_path) -> str:
    """A dashboard database the original tool made, with a run of its own."""
    path = tmp_path / "dashboard.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(original.SCHEMA)
    conn.execute("INSERT INTO runs (pipeline, started_at, outcome) VALUES ('laposta', ?, 'success')", (T0,))
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def test_a_database_the_original_tool_made_is_adopted_as_it_is(original_db):
    """runtracker adds its own columns and indexes to the original's database, and keeps its table
    definitions word for word: nothing to rebuild."""
    path = original_db[len("sqlite:///"):]
    before = dict(sqlite3.connect(path).execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    store = open_fresh(original_db)
    after = dict(sqlite3.connect(path).execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    for table in ("runs", "run_steps", "run_errors"):
        assert after[table].startswith(before[table].rstrip()[:-1])  # the same, then ALTER TABLE ADD COLUMNs
    assert store.schema_version() == schema.LATEST
    assert [r["pipeline"] for r in Runs(store).list_runs()] == ["laposta"]
    store.close()


def test_an_error_without_a_step_name_is_kept_on_the_original_tools_database(original_db):
    """step_name is NOT NULL there: an error recorded without one is stored under the step given by id, else
    the step in progress, else '(run)' — never lost to an IntegrityError."""
    t = RunTracker("nikki", db=original_db)
    t.start_run()
    t.record_error(error_message="before any step")
    download = t.start_step("nikki-download")
    sync = t.start_step("nikki-sync")
    t.record_error(error_message="in progress")
    t.record_error(step_id=download, error_message="by id")
    t.record_errors(None, None, ["listed"])
    t.end_step(sync, "success")
    t.end_step(download, "success")
    assert t.end_run("partial")
    errors = Db(original_db).errors(t.run_id)
    assert [(e["step_name"], e["error_message"]) for e in errors] == [
        ("(run)", "before any step"), ("nikki-sync", "in progress"), ("nikki-download", "by id"),
        ("nikki-sync", "listed")]


def test_a_database_of_an_earlier_runtracker_is_brought_in_line_without_losing_a_row(db_url):
    """Schema version 5 (club_slug without a default, nullable step names and messages): the upgrade keeps
    every row and column, fills the empty values with the defaults, and the definitions become the original's."""
    store = raw_store(db_url)
    with store.transaction() as cur:
        original.make_runtracker_v5(cur, store.dialect)
        for i in range(5):
            cur.execute(store.sql("INSERT INTO runs (club_slug, pipeline, started_at, outcome, hostname, lock_key)"
                                  " VALUES (?, 'nikki', ?, 'success', 'h', ?)"), (None if i % 2 else "rondo", T0,
                                                                                   f"k{i}"))
        cur.execute(store.sql("INSERT INTO run_steps (run_id, club_slug, step_name, started_at) VALUES (1, NULL,"
                              " 's', ?)"), (T0,))
        cur.execute(store.sql("INSERT INTO run_errors (run_id, club_slug, step_name, error_message, created_at)"
                              " VALUES (2, NULL, NULL, NULL, ?)"), (T1,))
        cur.execute("DELETE FROM runs WHERE id = 5")  # ids of deleted runs must not come back
    store.close()
    upgraded = open_fresh(db_url)
    assert upgraded.schema_version() == schema.LATEST
    assert definitions(upgraded) == original_columns()
    runs = upgraded.read("SELECT id, club_slug, hostname, lock_key FROM runs ORDER BY id")
    assert [(r["id"], r["club_slug"], r["hostname"], r["lock_key"]) for r in runs] == [
        (i, "rondo", "h", f"k{i - 1}") for i in range(1, 5)]
    assert [s["club_slug"] for s in Runs(upgraded).list_steps(1)] == ["rondo"]
    (error,) = Runs(upgraded).list_errors(2)
    assert (error["club_slug"], error["step_name"], error["error_message"]) == ("rondo", "(run)", "(no message)")
    found = indexes(upgraded)
    assert {name: found.get(name) for name in ORIGINAL_INDEXES} == ORIGINAL_INDEXES
    assert "idx_runs_lock" in found and "idx_run_steps_run" not in found
    assert original.OriginalTracker(upgraded, "laposta").start_run(T2) > 5
    upgraded.close()


def test_retention_deletes_the_original_tools_old_runs_like_its_own_cleanup(db_url):
    """Runs older than the retention window go at start_run, whoever wrote them: the original tool's run of
    four days ago is deleted with its steps and errors, its run of an hour ago is kept."""
    store = open_fresh(db_url)
    node = original.OriginalTracker(store, "laposta")
    old, recent = (_iso(datetime.now(UTC) - age) for age in (timedelta(days=4), timedelta(hours=1)))
    old_id = node.start_run(old)
    step = node.start_step("laposta-sync", old)
    node.record_error(step, "laposta-sync", "member not found", old, member="KNVB1004")
    node.end_run(old, "partial")
    recent_id = node.start_run(recent)
    node.end_run(recent, "success")
    ours = RunTracker("nikki", db=db_url, retention_days=3)
    ours.start_run()
    ours.end_run("success")
    assert sorted(r["id"] for r in store.read("SELECT id FROM runs WHERE pipeline = 'laposta'")) == [recent_id]
    assert store.read("SELECT id FROM run_steps WHERE run_id = ?", (old_id,)) == []
    assert store.read("SELECT id FROM run_errors WHERE run_id = ?", (old_id,)) == []
    store.close()
