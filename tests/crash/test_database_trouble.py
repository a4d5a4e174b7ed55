"""Database trouble while a run is open: a file deleted or replaced, a start that cannot be written, a full
disk, a file that belongs to another tool. Tracking never breaks the pipeline, and loses as little as it can."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from helpers import Db, run_app, start_app
from runtracker import RunTracker
from runtracker.storage import ForeignDatabase, Runs, open_store
from runtracker.storage import sqlite as sqlite_store


def _path(sqlite_url: str) -> str:
    return sqlite_url[len("sqlite:///"):]


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_file_deleted_or_replaced_mid_run_gets_the_rest_of_the_run(sqlite_url, tmp_path, how, caplog,
                                                                               monkeypatch):
    """The file is deleted (or another put in its place) while a run is open: noticed at the next call, logged
    once, and the run is written again in the file now at that path — same id, its open step, an error row
    saying what happened — where the rest of it is recorded. (The path is looked at before every call here;
    normally at most once a millisecond, see the next test.)"""
    monkeypatch.setattr(sqlite_store, "FILE_LOOK_INTERVAL_S", 0.0)
    path = _path(sqlite_url)
    t = RunTracker("nikki", db=sqlite_url)
    run_id = t.start_run()
    done = t.start_step("nikki-download")
    t.end_step(done, "success", created=40)
    open_step = t.start_step("nikki-sync")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    if how == "replaced":
        other = tmp_path / "other.sqlite"
        open_store(f"sqlite:///{other}").close()  # another (empty) runtracker database, moved into place
        os.replace(other, path)
    t.record_error(step_name="nikki-sync", step_id=open_step, member_identifier="KNVB1004", error_message="late")
    t.end_step(open_step, "partial", created=3, failed=1)
    later = t.start_step("nikki-upload")
    t.end_step(later, "success", created=1)
    assert t.end_run("partial") is True
    db = Db(sqlite_url)
    (run,) = db.runs()
    assert (run["id"], run["outcome"], run["total_created"]) == (run_id, "partial", 4)
    assert [(s["id"], s["step_name"], s["outcome"]) for s in db.steps(run_id)] == [
        (open_step, "nikki-sync", "partial"), (later, "nikki-upload", "success")]
    notes = [e["error_message"] for e in db.errors(run_id)]
    assert notes[0].startswith(f"the database file {path} was {how} while this run was open")
    assert notes[1:] == ["late"]
    assert sum(f"was {how} while this run was open" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.swallows
def test_a_run_whose_rewrite_into_a_replaced_file_failed_is_written_again_by_the_next_call(sqlite_url, tmp_path,
                                                                                           monkeypatch):
    """The file is replaced mid-run and the run's first write into the new file fails (a lock held too long):
    the next call writes it there after all, rather than recording the rest under an id the new file lacks."""
    monkeypatch.setattr(sqlite_store, "FILE_LOOK_INTERVAL_S", 0.0)
    path = _path(sqlite_url)
    t = RunTracker("nikki", db=sqlite_url)
    run_id = t.start_run()
    other = tmp_path / "other.sqlite"
    open_store(f"sqlite:///{other}").close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    os.replace(other, path)
    real, calls = Runs.insert_run, []

    def locked_once(runs, **fields):
        calls.append(fields)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(runs, **fields)

    monkeypatch.setattr(Runs, "insert_run", locked_once)
    t.record_error(error_message="lost with the failed write")
    t.record_error(error_message="recorded")
    assert t.end_run("partial") is True
    (run,) = Db(sqlite_url).runs()
    assert (run["id"], run["outcome"]) == (run_id, "partial")
    assert [e["error_message"] for e in Db(sqlite_url).errors(run_id)][1:] == ["recorded"]


def test_the_path_is_looked_at_at_most_once_a_millisecond(sqlite_url, monkeypatch):
    """A burst of calls pays one stat per millisecond, not one per call: a file deleted within that millisecond
    is noticed at the first call after it (the run's note then says what went to the old file)."""
    t = RunTracker("nikki", db=sqlite_url)
    t.start_run()
    looks = []
    real = sqlite_store._identity
    monkeypatch.setattr(sqlite_store, "_identity", lambda path: looks.append(path) or real(path))
    clock = [1000.0]
    monkeypatch.setattr(sqlite_store.time, "monotonic", lambda: clock[0])
    for _ in range(50):
        t.record_error(error_message="burst")
    assert len(looks) == 1
    clock[0] += 0.0011
    t.record_error(error_message="a millisecond later")
    assert len(looks) == 2
    t.end_run("partial")


SLOW_LOCK = """
import os, time
from runtracker import RunTracker
t = RunTracker("nikki")
print("asked at", time.time(), flush=True)
print("start_run returned", t.start_run(), flush=True)
while not os.path.exists(os.environ["GO"]):
    time.sleep(0.01)
{rest}
"""


def _hold_the_write_lock_while(tmp_path, sqlite_url, rest: str):
    """The app's start_run meets a write lock held for longer than the busy timeout (10 s); the lock is then
    released and the app goes on with `rest`. The database exists and is up to date: opening it writes nothing."""
    open_store(sqlite_url).close()
    holder = sqlite3.connect(_path(sqlite_url), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    go = tmp_path / "go"
    proc = start_app(tmp_path, SLOW_LOCK.replace("{rest}", rest), sqlite_url, env={"GO": str(go)})
    asked = float(proc.stdout.readline().split()[-1])
    assert proc.stdout.readline().strip() == "start_run returned None"
    holder.execute("ROLLBACK")
    holder.close()
    go.write_text("")
    out, err = proc.communicate(timeout=60)
    return proc.returncode, asked, out, err


@pytest.mark.parametrize("rest, outcome, exit_code", [
    ("s = t.start_step('nikki-sync'); t.end_step(s, 'success', created=5); t.end_run('success')", "success", 0),
    ("raise RuntimeError('crashed before any other call')", "failure", 1),
], ids=["later-calls-write-it", "the-exit-hook-writes-it"])
def test_a_start_run_that_cannot_be_written_is_written_later_with_its_real_start(tmp_path, sqlite_url, rest,
                                                                                outcome, exit_code):
    """start_run meets a lock held past the busy timeout: it returns None and logs why, the pipeline goes on,
    and the run is written, with the moment start_run was called as its start, by the next call that can —
    or by the exit hook, with the crash."""
    code, asked, out, err = _hold_the_write_lock_while(tmp_path, sqlite_url, rest)
    assert code == exit_code, err
    assert "the start of the run could not be written now" in err
    (run,) = Db(sqlite_url).runs()
    assert run["outcome"] == outcome
    started = time.mktime(time.strptime(run["started_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert asked - 1 <= started <= asked + 1  # not when it was finally written, 10 s later
    if outcome == "success":
        assert run["total_created"] == 5
    else:
        assert "RuntimeError: crashed before any other call" in Db(sqlite_url).crash_rows(run["id"])[0]["error_message"]


def test_trouble_is_logged_once_per_kind_per_run_with_a_count_at_its_end(tmp_path, sqlite_url):
    """A full disk under 200 calls: one log line for the first failure, one with the count of the others."""
    code = """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from runtracker import RunTracker
t = RunTracker("nikki")
t.start_run()
s = t.start_step("big")
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
for _ in range(200):
    t.record_error(step_name="big", step_id=s, error_message="x" * 1900)
t.end_step(s, "success"); t.end_run("success")
print("pipeline went on")
"""
    result = run_app(tmp_path, code, sqlite_url)
    assert result.returncode == 0 and "pipeline went on" in result.stdout
    lines = [line for line in result.stderr.splitlines() if "RunTracker.record_error failed" in line]
    assert len(lines) == 2, result.stderr
    assert "tracking skipped (OperationalError" in lines[0]
    more = int(lines[1].split("failed ")[1].split(" more")[0])
    assert 150 <= more <= 199 and "during run 1" in lines[1]


@pytest.mark.swallows
def test_a_sqlite_file_of_another_tool_is_left_exactly_as_found(tmp_path):
    """A `runs` table with other columns, in a rollback-journal file: refused, and not one byte changes (its
    journal mode stays `delete`)."""
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, job TEXT, ok INTEGER)")
    conn.execute("INSERT INTO runs (job, ok) VALUES ('backup', 1)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ForeignDatabase, match="lacks club_slug, pipeline, started_at"):
        open_store(str(path))
    t = RunTracker("nikki", db=str(path))
    assert t.start_run() is None  # logged; the pipeline goes on
    assert path.read_bytes() == before
    assert not os.path.exists(f"{path}-wal")
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@pytest.mark.swallows
def test_the_pipeline_survives_a_database_replaced_by_a_directory(sqlite_url, monkeypatch):
    """The path becomes a directory mid-run: calls fail and are logged, the pipeline goes on."""
    monkeypatch.setattr(sqlite_store, "FILE_LOOK_INTERVAL_S", 0.0)
    path = _path(sqlite_url)
    t = RunTracker("nikki", db=sqlite_url)
    t.start_run()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    os.mkdir(path)
    assert t.start_step("nikki-sync") is None
    assert t.end_run("success") is False
