"""What runtracker records stays true: an end it acknowledged is never rewritten or replaced by a guess, a run
belongs to the thread that started it, a finished run has no open or later steps, one bad run does not stop
the reaper, and duration_ms agrees with the timestamps.

Black-box: real subprocesses using only `RunTracker`, `runtracker exec` and `runtracker reap`; the database is
read through `helpers.Db` or a plain connection of the test's own.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime

from helpers import Db, app_env, run_app, start_app

SQLITE_MAX_INT = 2**63 - 1
DOCUMENTED_MAX_COUNT = 2**31 - 1


def wait_until(predicate, timeout, what):
    """Poll `predicate` until it is true; fail loudly, naming `what`, after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@contextmanager
def sqlite_write_lock(sqlite_url):
    """Hold SQLite's write lock from a connection of the test's own (as another process would)."""
    conn = sqlite3.connect(sqlite_url[len("sqlite:///"):], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("COMMIT")
        conn.close()


def execute(db_url, sql, params=()):
    """One statement on a connection of the test's own, committed; `?` placeholders; returns the rows."""
    if db_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []
    conn = sqlite3.connect(db_url[len("sqlite:///"):], isolation_level=None)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def parse(timestamp):
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def ms(start, end):
    """finished_at - started_at in whole milliseconds (the timestamps have millisecond precision)."""
    return round((parse(end) - parse(start)).total_seconds() * 1000)


def duration_mismatches(db, runs):
    """(what, id, duration_ms, finished_at - started_at in ms) for every row of `runs` and their steps that
    disagree."""
    bad = []
    for run in runs:
        rows = [("run", run)] + [("step", s) for s in db.steps(run["id"])]
        for what, row in rows:
            elapsed = ms(row["started_at"], row["finished_at"])
            if row["duration_ms"] != elapsed:
                bad.append((what, row["id"], row["duration_ms"], elapsed))
    return bad


# -- 1. acknowledged step ends are never rewritten ---------------------------------------------------------

STEPPING_THREADS = """
import os, threading, time
from runtracker import RunTracker
tracker = RunTracker("nikki")
tracker.start_run()
acked = os.open("acked", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
def work():
    while True:
        step = tracker.start_step("nikki-sync")
        if tracker.end_step(step, "success", created=1):
            os.write(acked, f"{step}\\n".encode())   # end_step returned True: this end is acknowledged
for _ in range(8):
    threading.Thread(target=work, daemon=True).start()
time.sleep(60)
"""


def test_sigterm_never_rewrites_a_step_end_that_end_step_acknowledged(tmp_path, db_url):
    """SIGTERM while 8 threads end steps: every step end_step returned True for keeps success and its count."""
    db = Db(db_url)
    acked: list[int] = []
    ack_file = tmp_path / "acked"
    for _ in range(3):  # each round is one process, one run, and some 100+ acknowledged ends
        ack_file.unlink(missing_ok=True)
        proc = start_app(tmp_path, STEPPING_THREADS, db_url)
        wait_until(lambda: ack_file.exists() and ack_file.read_text().count("\n") >= 100, 30,
                   "100 acknowledged step ends")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGTERM
        acked += [int(line) for line in ack_file.read_text().split()]
    steps = {s["id"]: s for run in db.runs() for s in db.steps(run["id"])}
    rewritten = [(i, steps[i]["outcome"], steps[i]["created_count"]) for i in acked
                 if (steps[i]["outcome"], steps[i]["created_count"]) != ("success", 1)]
    assert rewritten == [], f"acknowledged step ends rewritten (id, outcome, created): {rewritten}"


# -- 2. no open steps, and no steps after the end, in a finished run --------------------------------------

WORKERS_OUTLIVE_THE_CRASH = """
import logging, sys, threading, time
from runtracker import RunTracker
logging.basicConfig(stream=sys.stdout)
tracker = RunTracker("nikki")
tracker.start_run()
def work():
    while threading.main_thread().is_alive():
        tracker.end_step(tracker.start_step("nikki-sync"), "success", created=1)
    deadline = time.monotonic() + 1   # the main thread has crashed: this worker goes on for a second
    while time.monotonic() < deadline:
        tracker.end_step(tracker.start_step("nikki-sync"), "success", created=1)
    step = tracker.start_step("nikki-upload")
    print(f"late start_step returned {step!r}", flush=True)
    raise ConnectionError("upload failed")   # the worker dies in the middle of its step
workers = [threading.Thread(target=work) for _ in range(2)]
for worker in workers:
    worker.start()
time.sleep(0.3)
raise RuntimeError("main thread crashed")
"""


def test_steps_of_other_threads_after_a_crash_leave_no_open_or_later_step(tmp_path, db_url):
    """Workers go on after the main thread's crash ended the run: no step is left open or starts after its end."""
    result = run_app(tmp_path, WORKERS_OUTLIVE_THE_CRASH, db_url)
    assert result.returncode == 1
    db = Db(db_url)
    run = db.run()
    assert run["outcome"] == "failure"
    steps = db.steps(run["id"])
    open_steps = [(s["id"], s["step_name"], s["started_at"]) for s in steps if s["finished_at"] is None]
    assert open_steps == [], f"steps left open in run ended at {run['finished_at']}: {open_steps}"
    later = [(s["id"], s["started_at"]) for s in steps if s["started_at"] > run["finished_at"]]
    assert later == [], f"{len(later)} steps started after the run ended at {run['finished_at']}: {later[:3]}"
    assert result.stdout.count("late start_step returned None") == 2, result.stdout
    assert "WARNING:runtracker:" in result.stdout


# -- 3. a run belongs to the thread that started it --------------------------------------------------------

WORKER_WITH_ITS_OWN_RUN = """
import os, threading
from runtracker import RunTracker
TRACK = os.environ.get("TRACK") == "1"
started = threading.Event()
def worker():
    if TRACK:
        own = RunTracker("freescout")
        own.start_run()
        step = own.start_step("freescout-sync")
    started.set()
    threading.main_thread().join()   # the main thread has crashed (and its crash was handled)
    if TRACK:
        print("worker end_step", own.end_step(step, "success", created=5), "end_run", own.end_run("success"))
if TRACK:
    RunTracker("nikki").start_run()
threading.Thread(target=worker, name="freescout-worker").start()
started.wait()
raise RuntimeError("main thread crashed")
"""


def test_main_thread_crash_does_not_end_another_threads_live_run(tmp_path, db_url):
    """The main thread's crash fails its own run only; a worker's own run ends as the worker says."""
    plain = run_app(tmp_path, WORKER_WITH_ITS_OWN_RUN, db_url, env={"TRACK": "0"})
    tracked = run_app(tmp_path, WORKER_WITH_ITS_OWN_RUN, db_url, env={"TRACK": "1"})
    assert tracked.returncode == plain.returncode == 1
    db = Db(db_url)
    runs = {r["pipeline"]: r for r in db.runs()}
    main, worker = runs["nikki"], runs["freescout"]
    assert main["outcome"] == "failure"
    crashes = db.crash_rows(main["id"])
    assert len(crashes) == 1 and "RuntimeError: main thread crashed" in crashes[0]["error_message"]
    assert (worker["outcome"], worker["total_created"]) == ("success", 5), worker
    assert db.crash_rows(worker["id"]) == []
    assert "worker end_step True end_run True" in tracked.stdout
    assert tracked.stderr == plain.stderr


# -- 4. an acknowledged end is never replaced by a guess ---------------------------------------------------

ENDS_UNDER_A_LOCK_THEN_EXITS_12 = """
import os, sys, time
from runtracker import RunTracker
tracker = RunTracker("nikki")
tracker.start_run()
tracker.end_step(tracker.start_step("nikki-sync"), "success", created=3)
print("ready", flush=True)
while not os.path.exists("go"):
    time.sleep(0.01)
print("end_run returned", tracker.end_run("success"), flush=True)
sys.exit(12)
"""


def test_end_run_waiting_out_a_long_write_lock_still_ends_the_run_as_asked(tmp_path, sqlite_url):
    """end_run("success") while another connection holds the write lock past the busy timeouts: still success."""
    proc = start_app(tmp_path, ENDS_UNDER_A_LOCK_THEN_EXITS_12, sqlite_url)
    assert proc.stdout.readline().strip() == "ready"
    with sqlite_write_lock(sqlite_url):
        (tmp_path / "go").write_text("")
        # Longer than end_run's 10 s busy timeout plus the 10 s of its retry at exit (with ~12 s the retry
        # already gets the lock): the end the pipeline asked for must still win over the exit hook's guess.
        time.sleep(22)
    proc.communicate(timeout=60)
    assert proc.returncode == 12
    db = Db(sqlite_url)
    run = db.run()
    guesses = [c["error_message"] for c in db.crash_rows(run["id"]) if "without end_run" in c["error_message"]]
    assert (run["outcome"], run["total_created"], guesses) == ("success", 3, []), run["summary_json"]


def test_exec_run_whose_end_waits_out_a_long_write_lock_records_the_commands_exit(tmp_path, sqlite_url):
    """`runtracker exec` of a command exiting 0 while the write lock is held ~12 s: success, exit 0, tail kept."""
    command = ["sh", "-c", "echo ready; sleep 1"]
    proc = subprocess.Popen([sys.executable, "-m", "runtracker", "exec", "-p", "nikki", "--", *command],
                            env=app_env(sqlite_url), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    with sqlite_write_lock(sqlite_url):
        time.sleep(12)  # from before the command exits (after 1 s) until past the 10 s busy timeout
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    db = Db(sqlite_url)
    [run] = db.runs()
    assert (run["outcome"], run["exit_code"]) == ("success", 0), run["summary_json"]
    assert json.loads(run["summary_json"]).get("command") == "sh -c 'echo ready; sleep 1'", run["summary_json"]
    [row] = db.query("SELECT output_tail FROM runs WHERE id = ?", (run["id"],))
    assert "ready" in (row["output_tail"] or ""), row


# -- 5. huge counts, and the reaper ending each run on its own ---------------------------------------------

HUGE_COUNTS = """
import sys
from runtracker import RunTracker
tracker = RunTracker("nikki")
tracker.start_run()
for name in ("nikki-download", "nikki-sync"):
    tracker.end_step(tracker.start_step(name), "success", created=int(sys.argv[1]))
print("end_run returned", tracker.end_run("success"), flush=True)
"""


def test_step_counts_whose_sum_overflows_still_let_the_run_end(tmp_path, db_url):
    """Two huge step counts: end_run returns True; counts clamp to 2**31-1 (SQLite) or add up (PostgreSQL)."""
    postgres = db_url.startswith("postgresql")
    created = 2_000_000_000 if postgres else 10**19
    result = run_app(tmp_path, HUGE_COUNTS, db_url, args=[str(created)])
    assert "end_run returned True" in result.stdout, result.stdout + result.stderr
    db = Db(db_url)
    run = db.run()
    step_count = created if postgres else DOCUMENTED_MAX_COUNT
    assert [s["created_count"] for s in db.steps(run["id"])] == [step_count, step_count]
    assert (run["outcome"], run["total_created"]) == ("success", 2 * step_count)


TWO_RUNS_THEN_SIGKILL = """
import os, signal
from runtracker import RunTracker
bad = RunTracker("nikki")
bad.start_run()
for name in ("nikki-download", "nikki-sync"):
    bad.end_step(bad.start_step(name), "success", created=1)
good = RunTracker("freescout")
good.start_run()
good.start_step("freescout-sync")
print(bad.run_id, good.run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_reap_ends_every_lost_run_it_can_even_when_one_cannot_be_ended(tmp_path, db_url):
    """Two runs of a SIGKILLed process, the first with step sums that overflow: `runtracker reap` ends the other."""
    result = run_app(tmp_path, TWO_RUNS_THEN_SIGKILL, db_url)
    assert result.returncode == -signal.SIGKILL, result.stderr
    bad_id, good_id = map(int, result.stdout.split())
    # Step counts at their column's maximum: their sum fits no integer column, so the first run cannot be ended.
    biggest = SQLITE_MAX_INT
    if db_url.startswith("postgresql"):
        [(column_type,)] = execute(db_url, "SELECT data_type FROM information_schema.columns WHERE table_schema ="
                                           " current_schema() AND table_name = 'run_steps' AND column_name ="
                                           " 'created_count'")
        biggest = DOCUMENTED_MAX_COUNT if column_type == "integer" else SQLITE_MAX_INT
    execute(db_url, "UPDATE run_steps SET created_count = ? WHERE run_id = ?", (biggest, bad_id))
    reap = subprocess.run([sys.executable, "-m", "runtracker", "reap"], env=app_env(db_url), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    good = Db(db_url).run(good_id)
    assert (good["outcome"], good["reaped_at"] is not None) == ("failure", True), (good, reap.stdout, reap.stderr)


# -- 6. duration_ms is finished_at - started_at ------------------------------------------------------------

ONE_RUN = """
from runtracker import RunTracker
tracker = RunTracker("nikki")
tracker.start_run()
tracker.end_step(tracker.start_step("nikki-sync"), "success", created=1)
tracker.end_run("success")
"""


def test_duration_ms_of_a_processs_first_run_and_its_steps_equals_its_timestamps(tmp_path, db_url):
    """A fresh process's first run (database opened and migrated inside start_run): duration_ms == end - start."""
    result = run_app(tmp_path, ONE_RUN, db_url)
    assert result.returncode == 0, result.stderr
    db = Db(db_url)
    bad = duration_mismatches(db, db.runs())
    assert bad == [], f"(row, id, duration_ms, finished_at - started_at in ms): {bad}"


RUN_STARTED_UNDER_A_LOCK = """
import os, time
from runtracker import RunTracker
tracker = RunTracker("nikki")
tracker.start_run()   # the database is open before the run under test
tracker.end_run("success")
print("ready", flush=True)
while not os.path.exists("go"):
    time.sleep(0.01)
run_id = tracker.start_run()   # waits for the test's write lock
tracker.end_step(tracker.start_step("nikki-sync"), "success", created=1)
tracker.end_run("success")
print(run_id, flush=True)
"""


def test_duration_ms_of_a_run_whose_start_waited_on_a_lock_equals_its_timestamps(tmp_path, sqlite_url):
    """start_run waits ~3 s for another connection's write lock: duration_ms still == finished_at - started_at."""
    proc = start_app(tmp_path, RUN_STARTED_UNDER_A_LOCK, sqlite_url)
    assert proc.stdout.readline().strip() == "ready"
    with sqlite_write_lock(sqlite_url):
        (tmp_path / "go").write_text("")
        time.sleep(3)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    db = Db(sqlite_url)
    run = db.run(int(out.split()[-1]))
    bad = duration_mismatches(db, [run])
    assert bad == [], f"(row, id, duration_ms, finished_at - started_at in ms): {bad}"
