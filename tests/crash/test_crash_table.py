"""One test per row of the README's crash table: a real subprocess really dies, and we read the database.

Each app runs the same file with and without tracking (TRACK=1 or not), so the traceback and exit status
can be compared line for line with what the process does without runtracker.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from helpers import Db, run_app, start_app, wait_until

PRELUDE = """
import os, sys, time, signal, threading, asyncio
from runtracker import RunTracker
TRACK = os.environ.get("TRACK") == "1"
tracker = RunTracker("nikki")
if TRACK:
    tracker.start_run()
    step = tracker.start_step("nikki-sync")
"""


def both(tmp_path, code, db_url, **kw):
    """Run the app untracked, then tracked; return (untracked, tracked) results."""
    plain = run_app(tmp_path, PRELUDE + code, db_url, env={"TRACK": "0"}, **kw)
    tracked = run_app(tmp_path, PRELUDE + code, db_url, env={"TRACK": "1"}, **kw)
    return plain, tracked


def assert_crashed(db: Db, kind: str, message_part: str):
    run = db.run()
    assert run["outcome"] == "failure"
    assert run["finished_at"] is not None and run["duration_ms"] is not None
    summary = json.loads(run["summary_json"])
    assert summary["crash"] is True and summary["kind"] == kind
    crashes = db.crash_rows(run["id"])
    assert len(crashes) == 1
    assert message_part in crashes[0]["error_message"]
    steps = db.steps(run["id"])
    assert [s["outcome"] for s in steps] == ["failure"]
    return run, crashes[0]


def test_uncaught_exception_marks_run_failed_with_same_traceback_and_exit_1(tmp_path, db_url):
    """An uncaught exception in the main thread: failure + crash row with the stack; traceback and exit 1 unchanged."""
    plain, tracked = both(tmp_path, "raise ValueError('boom')\n", db_url)
    assert tracked.returncode == plain.returncode == 1
    assert tracked.stderr == plain.stderr
    assert "ValueError: boom" in tracked.stderr
    _, crash = assert_crashed(Db(db_url), "uncaught_exception", "ValueError: boom")
    assert "Traceback" in crash["error_stack"] and "app.py" in crash["error_stack"]


def test_recursion_error_is_recorded_as_a_crash(tmp_path, db_url):
    """RecursionError: the stack has unwound by the time the hook runs, so there is room to record it."""
    code = "def f(n):\n    return f(n + 1)\nf(0)\n"
    plain, tracked = both(tmp_path, code, db_url)
    assert tracked.returncode == plain.returncode == 1
    assert tracked.stderr == plain.stderr
    assert_crashed(Db(db_url), "uncaught_exception", "RecursionError")


def test_memory_error_is_recorded_as_a_crash(tmp_path, db_url):
    """MemoryError from a huge allocation: failure + crash row, exit 1."""
    plain, tracked = both(tmp_path, "data = bytearray(1 << 62)\n", db_url)
    assert tracked.returncode == plain.returncode == 1
    assert tracked.stderr == plain.stderr
    assert_crashed(Db(db_url), "uncaught_exception", "MemoryError")


def test_asyncio_run_main_raising_marks_run_failed_and_exits_1(tmp_path, db_url):
    """asyncio.run(main) where main raises: failure + crash row, exit 1, same traceback."""
    code = "async def main():\n    await asyncio.sleep(0)\n    raise KeyError('member')\nasyncio.run(main())\n"
    plain, tracked = both(tmp_path, code, db_url)
    assert tracked.returncode == plain.returncode == 1
    assert tracked.stderr == plain.stderr
    assert_crashed(Db(db_url), "uncaught_exception", "KeyError")


def test_asyncio_task_exception_never_retrieved_records_crash_and_run_ends_partial(tmp_path, db_url):
    """A task whose exception nobody retrieves: a crash row, the process goes on, and success becomes partial."""
    code = """
async def worker():
    raise RuntimeError("lost task")
async def main():
    asyncio.ensure_future(worker())   # nothing keeps the task: reported when it is collected
    await asyncio.sleep(0.05)
    import gc; gc.collect()
    await asyncio.sleep(0.05)
asyncio.run(main())
if TRACK:
    tracker.end_step(step, "success")
    tracker.end_run("success")
print("went on")
"""
    plain, tracked = both(tmp_path, code, db_url)
    assert tracked.returncode == plain.returncode == 0
    assert "went on" in tracked.stdout
    assert "Task exception was never retrieved" in tracked.stderr
    db = Db(db_url)
    run = db.run()
    assert run["outcome"] == "partial"
    crashes = db.crash_rows(run["id"])
    assert len(crashes) == 1 and "lost task" in crashes[0]["error_message"]
    assert "never retrieved" in crashes[0]["error_message"]


def test_thread_exception_records_crash_and_run_cannot_end_success(tmp_path, db_url):
    """An uncaught exception in another thread: crash row, default traceback still printed, run ends partial."""
    code = """
def work():
    raise OSError("thread died")
t = threading.Thread(target=work, name="syncer")
t.start(); t.join()
if TRACK:
    tracker.end_step(step, "success")
    tracker.end_run("success")
print("main went on")
"""
    plain, tracked = both(tmp_path, code, db_url)
    assert tracked.returncode == plain.returncode == 0
    assert tracked.stderr == plain.stderr and "OSError: thread died" in tracked.stderr
    assert "main went on" in tracked.stdout
    db = Db(db_url)
    run = db.run()
    assert run["outcome"] == "partial"
    crashes = db.crash_rows(run["id"])
    assert len(crashes) == 1
    assert "syncer" in crashes[0]["error_message"] and "OSError: thread died" in crashes[0]["error_message"]


def test_thread_dying_of_an_exception_ends_its_own_run_failed(tmp_path, db_url):
    """A thread that started a run of its own and dies of an uncaught exception: its run is `failure` with the
    crash row naming the thread; the main thread's run goes on (with a crash row) and the process exits 0."""
    code = """
def work():
    if TRACK:
        own = RunTracker("freescout")
        own.start_run()
        own.start_step("freescout-sync")
    raise OSError("thread died")
t = threading.Thread(target=work, name="syncer")
t.start(); t.join()
if TRACK:
    tracker.end_step(step, "success")
    tracker.end_run("success")
"""
    plain, tracked = both(tmp_path, code, db_url)
    assert tracked.returncode == plain.returncode == 0
    assert tracked.stderr == plain.stderr
    db = Db(db_url)
    runs = {r["pipeline"]: r for r in db.runs()}
    assert runs["freescout"]["outcome"] == "failure"
    summary = json.loads(runs["freescout"]["summary_json"])
    assert (summary["kind"], summary["thread"], summary["step_in_progress"]) == (
        "uncaught_exception", "syncer", "freescout-sync")
    (crash,) = db.crash_rows(runs["freescout"]["id"])
    assert crash["error_message"] == "OSError: thread died" and "work" in crash["error_stack"]
    assert [s["outcome"] for s in db.steps(runs["freescout"]["id"])] == ["failure"]
    assert runs["nikki"]["outcome"] == "partial" and len(db.crash_rows(runs["nikki"]["id"])) == 1


def test_main_thread_crash_leaves_a_daemon_threads_run_to_the_exit_hook(tmp_path, db_url):
    """The main thread dies while a daemon thread is inside its own run: Python does not wait for it, so the
    exit hook ends that run, saying what the process died of."""
    code = """
started = threading.Event()
def work():
    if TRACK:
        RunTracker("freescout").start_run()
    started.set()
    time.sleep(30)
threading.Thread(target=work, name="poller", daemon=True).start()
started.wait()
raise ValueError("boom")
"""
    plain, tracked = both(tmp_path, code, db_url)
    assert tracked.returncode == plain.returncode == 1 and tracked.stderr == plain.stderr
    db = Db(db_url)
    runs = {r["pipeline"]: r for r in db.runs()}
    assert runs["nikki"]["outcome"] == runs["freescout"]["outcome"] == "failure"
    (crash,) = db.crash_rows(runs["freescout"]["id"])
    assert crash["error_message"] == (
        "the process died of ValueError: boom while this run's thread was still running")
    assert json.loads(runs["freescout"]["summary_json"])["kind"] == "uncaught_exception"


SLEEPER = """
print("ready", flush=True)
time.sleep(30)
"""


def _wait_until_asleep(pid: int) -> None:
    import psutil

    process = psutil.Process(pid)
    wait_until(lambda: process.status() == psutil.STATUS_SLEEPING, f"pid {pid} to sleep", interval=0.01)


def _signal_app(tmp_path, db_url, code, signum, track="1"):
    proc = start_app(tmp_path, PRELUDE + code, db_url, env={"TRACK": track})
    assert proc.stdout.readline().strip() == "ready"
    _wait_until_asleep(proc.pid)  # so the signal lands in time.sleep, where the traceback is comparable
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_mark_run_failed_and_process_dies_by_that_signal(tmp_path, db_url, signum):
    """SIGTERM/SIGHUP: failure + crash row naming the signal; the parent sees -N as without runtracker."""
    plain_code, _, _ = _signal_app(tmp_path, db_url, SLEEPER, signum, track="0")
    code, _, err = _signal_app(tmp_path, db_url, SLEEPER, signum)
    assert code == plain_code == -signum
    run, crash = assert_crashed(Db(db_url), "signal", signal.Signals(signum).name)
    assert json.loads(run["summary_json"])["signal"] == signal.Signals(signum).name
    assert err == ""


def test_sigterm_calls_users_own_handler_and_records_the_signal(tmp_path, db_url):
    """A user's SIGTERM handler still runs (once); its sys.exit(143) decides the exit; the run names SIGTERM."""
    code = """
def on_term(signum, frame):
    print("user handler", signum, flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
if TRACK:
    tracker.start_run()   # a second run, started after the user's handler was set: hooks chain it
print("ready", flush=True)
time.sleep(30)
"""
    plain_code, plain_out, _ = _signal_app(tmp_path, db_url, code, signal.SIGTERM, track="0")
    code_, out, _ = _signal_app(tmp_path, db_url, code, signal.SIGTERM)
    assert code_ == plain_code == 143
    assert out.count("user handler 15") == 1 == plain_out.count("user handler 15")
    db = Db(db_url)
    runs = [r for r in db.runs() if r["outcome"] != "success"]
    tracked = runs[-2:]
    for run in tracked:
        assert run["outcome"] == "failure" and run["exit_code"] == 143
        summary = json.loads(run["summary_json"])
        assert summary["signal"] == "SIGTERM"
        assert len(db.crash_rows(run["id"])) == 1


def test_sigint_marks_run_failed_and_exits_as_python_does(tmp_path, db_url):
    """Ctrl-C: KeyboardInterrupt is recorded as the crash; the parent still sees -2."""
    plain_code, _, plain_err = _signal_app(tmp_path, db_url, SLEEPER, signal.SIGINT, track="0")
    code, _, err = _signal_app(tmp_path, db_url, SLEEPER, signal.SIGINT)
    assert code == plain_code == -signal.SIGINT
    assert "KeyboardInterrupt" in err and err == plain_err
    assert_crashed(Db(db_url), "keyboard_interrupt", "KeyboardInterrupt")


def test_sys_exit_without_end_run_records_failure_and_exit_code(tmp_path, db_url):
    """sys.exit(3) with the run open: failure with exit_code 3, and the process still exits 3."""
    plain, tracked = both(tmp_path, "sys.exit(3)\n", db_url)
    assert tracked.returncode == plain.returncode == 3
    run, crash = assert_crashed(Db(db_url), "exit", "exited with code 3")
    assert run["exit_code"] == 3


def test_falling_off_the_end_without_end_run_records_failure(tmp_path, db_url):
    """A script that forgets end_run: failure, exit code 0 recorded, the process exits 0."""
    plain, tracked = both(tmp_path, "print('done')\n", db_url)
    assert tracked.returncode == plain.returncode == 0
    run, _ = assert_crashed(Db(db_url), "exit", "without end_run")
    assert run["exit_code"] == 0


def test_forked_child_dying_leaves_parent_runs_untouched(tmp_path, db_url):
    """After os.fork() the child's crash or exit is not the parent's: the parent's run ends as it says."""
    code = """
pid = os.fork()
if pid == 0:
    if sys.argv[1] == "raise":
        raise RuntimeError("child crashed")
    sys.exit(7)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status), flush=True)
tracker.end_step(step, "success", created=1)
tracker.end_run("success")
"""
    for how, child_code in (("raise", 1), ("exit", 7)):
        result = run_app(tmp_path, PRELUDE + code, db_url, env={"TRACK": "1"}, args=[how])
        assert result.returncode == 0, result.stderr
        assert f"child {child_code}" in result.stdout
        db = Db(db_url)
        run = db.run()
        assert run["outcome"] == "success" and run["total_created"] == 1
        assert db.crash_rows(run["id"]) == []


def test_every_open_run_of_the_process_fails_not_only_the_latest(tmp_path, db_url):
    """Two trackers with open runs, one crash: both runs failed, one crash row each; the user's hook runs once."""
    code = """
import sys
calls = []
def users_hook(t, e, tb):
    calls.append(1)
    print("user hook", len(calls), flush=True)
    sys.__excepthook__(t, e, tb)
sys.excepthook = users_hook
a = RunTracker("nikki"); a.start_run()
b = RunTracker("freescout"); b.start_run()
done = RunTracker("done"); done.start_run(); done.end_run("success")
raise RuntimeError("both")
"""
    result = run_app(tmp_path, PRELUDE + code, db_url, env={"TRACK": "0"})
    assert result.returncode == 1
    assert result.stdout.count("user hook") == 1
    db = Db(db_url)
    runs = {r["pipeline"]: r for r in db.runs()}
    for pipeline in ("nikki", "freescout"):
        assert runs[pipeline]["outcome"] == "failure"
        crashes = db.crash_rows(runs[pipeline]["id"])
        assert len(crashes) == 1 and "RuntimeError: both" in crashes[0]["error_message"]
    assert runs["done"]["outcome"] == "success" and db.crash_rows(runs["done"]["id"]) == []


def test_sigterm_while_our_own_write_transaction_is_open_still_records_the_crash(tmp_path, db_url):
    """SIGTERM lands while the main thread is inside one of our transactions: the crash is still committed."""
    code = """
from runtracker.core.state import STATE
run = STATE.open_runs()[0]
with run.store.transaction() as cur:
    os.kill(os.getpid(), signal.SIGTERM)   # the handler runs here, inside the open transaction
    time.sleep(5)
"""
    result = run_app(tmp_path, PRELUDE + code, db_url, env={"TRACK": "1"})
    assert result.returncode == -signal.SIGTERM
    assert_crashed(Db(db_url), "signal", "SIGTERM")


def test_crash_is_recorded_while_a_foreign_process_holds_the_write_lock(tmp_path, sqlite_url):
    """Another process holds SQLite's write lock for 2 s at crash time: the crash row still lands."""
    import sqlite3

    code = """
print("ready", flush=True)
while not os.path.exists("go"):
    time.sleep(0.01)
raise RuntimeError("crash under lock")
"""
    proc = start_app(tmp_path, PRELUDE + code, sqlite_url, env={"TRACK": "1"})
    assert proc.stdout.readline().strip() == "ready"
    lock = sqlite3.connect(sqlite_url[len("sqlite:///"):], isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    (tmp_path / "go").write_text("")
    time.sleep(2)
    assert proc.poll() is None, "the crash handler should be waiting for the lock"
    lock.execute("COMMIT")
    lock.close()
    proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert_crashed(Db(sqlite_url), "uncaught_exception", "crash under lock")


# Found by bench/soak.py: a signal landing while the main thread had a statement of ours in progress on the
# store's connection left the crash unwritten (about 2 in 100 signal deaths), and the reaper ended the run later.
STATEMENT_IN_PROGRESS = {
    "an INSERT ... RETURNING whose row was not read": """
cur = run.store.connection.cursor()
cur.execute("BEGIN IMMEDIATE")
cur.execute("INSERT INTO run_errors (run_id, club_slug, step_name, error_message, created_at)"
            " VALUES (?, 'rondo', 'sync', 'half-written', '2026-01-01T00:00:00.000Z') RETURNING id", (run.run_id,))
""",
    "a SELECT not fetched to its end, on a snapshot another process has written past": """
cur = run.store.connection.cursor()
cur.execute("SELECT id FROM run_steps UNION ALL SELECT id FROM runs")
cur.fetchone()
import sqlite3
other = sqlite3.connect(run.store.path, isolation_level=None)
other.execute("INSERT INTO run_errors (run_id, club_slug, step_name, error_message, created_at)"
              " VALUES (?, 'rondo', 'sync', 'from elsewhere', '2026-01-01T00:00:00.000Z')", (run.run_id,))
other.close()
""",
}


@pytest.mark.parametrize("situation", sorted(STATEMENT_IN_PROGRESS))
def test_sigterm_with_a_statement_in_progress_on_the_connection_still_records_the_crash(tmp_path, sqlite_url,
                                                                                           situation):
    """SIGTERM while a statement of the store's connection is in progress: the crash is written by the process
    itself (kind signal, not reaped), on a connection of its own."""
    code = """
from runtracker.core.state import STATE
run = STATE.open_runs()[0]
""" + STATEMENT_IN_PROGRESS[situation] + """
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
"""
    result = run_app(tmp_path, PRELUDE + code, sqlite_url, env={"TRACK": "1"})
    assert result.returncode == -signal.SIGTERM, result.stderr
    db = Db(sqlite_url)
    assert_crashed(db, "signal", "SIGTERM")
    run = db.run()
    assert run["reaped_at"] is None and run["ended_by"] == "owner", run
    assert "recording SIGTERM failed" not in result.stderr
