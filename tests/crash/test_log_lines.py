"""The last log lines before a crash: real subprocesses log, then die (uncaught exception, SIGTERM, a thread's
exception), and the crash row holds their last log lines after the traceback, in order, bounded and capped.

Each app runs untracked and tracked: the process's stderr (where its logging goes) and exit status are the same.
"""

from __future__ import annotations

import signal

from helpers import Db, run_app, start_app
from runtracker.core import logring

PRELUDE = """
import logging, os, sys, threading, time
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
log = logging.getLogger("nikki.sync")
from runtracker import RunTracker
TRACK = os.environ.get("TRACK") == "1"
tracker = RunTracker("nikki")
if TRACK:
    tracker.start_run()
    step = tracker.start_step("nikki-sync")
log.debug("a debug line, below the ring's level")
member = {"id": "KNVB0000"}
for i in range(70):
    member["id"] = f"KNVB{i:04d}"
    log.info("member %s synced", member["id"])
log.warning("a long line " + "x" * 2000)
"""

MEMBERS = [f"INFO nikki.sync: member KNVB{i:04d} synced" for i in range(21, 70)]  # the 49 before the long line


def both(tmp_path, code, db_url):
    """Run the app untracked, then tracked; return (untracked, tracked) results."""
    plain = run_app(tmp_path, PRELUDE + code, db_url, env={"TRACK": "0"})
    tracked = run_app(tmp_path, PRELUDE + code, db_url, env={"TRACK": "1"})
    return plain, tracked


def log_section(crash: dict) -> list[str]:
    """The crash row's log lines, without their timestamps; fails if the row has none."""
    stack, lines = logring.split_stack(crash["error_stack"])
    assert lines is not None, crash["error_stack"]
    head, *rest = lines.split("\n")
    assert head.startswith(logring.HEADER)
    return [line.split(" ", 1)[1] for line in rest]


def assert_last_lines(lines: list[str], *after: str) -> None:
    """The last 50 records since the run started, oldest first: the members, the long line capped, then `after`."""
    assert len(lines) == 50
    members = len(MEMBERS) - len(after)
    assert lines[:members] == MEMBERS[len(after):]
    long_line = lines[members]
    assert long_line.startswith("WARNING nikki.sync: a long line xxx") and long_line.endswith("…")
    assert len(long_line) < logring.LINE_LIMIT
    assert lines[members + 1:] == list(after)
    assert not any("debug line" in line for line in lines)


def test_an_uncaught_exception_keeps_the_last_log_lines_after_the_traceback(tmp_path, db_url):
    """Uncaught exception: the crash row has the traceback, then the last 50 log lines in order; stderr and exit
    status are as without tracking."""
    plain, tracked = both(tmp_path, "log.error('giving up on %s', member['id'])\nraise ValueError('boom')\n", db_url)
    assert tracked.returncode == plain.returncode == 1
    assert tracked.stderr == plain.stderr
    assert "ERROR nikki.sync: giving up on KNVB0069" in tracked.stderr
    db = Db(db_url)
    run = db.run()
    assert run["outcome"] == "failure"
    (crash,) = db.crash_rows(run["id"])
    stack, _ = logring.split_stack(crash["error_stack"])
    assert stack.startswith("Traceback") and stack.rstrip().endswith("ValueError: boom")
    assert_last_lines(log_section(crash), "ERROR nikki.sync: giving up on KNVB0069")


def test_sigterm_keeps_the_last_log_lines_and_the_process_still_dies_by_it(tmp_path, db_url):
    """SIGTERM: the crash row (no traceback) holds the last log lines; the process dies by SIGTERM as without us."""
    code = "log.info('waiting for the API')\nprint('ready', flush=True)\ntime.sleep(30)\n"
    results = []
    for track in ("0", "1"):
        proc = start_app(tmp_path, PRELUDE + code, db_url, env={"TRACK": track})
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        results.append((proc.returncode, err))
    assert results[0] == results[1]
    assert results[1][0] == -signal.SIGTERM
    db = Db(db_url)
    (crash,) = db.crash_rows(db.run()["id"])
    assert "SIGTERM" in crash["error_message"]
    assert crash["error_stack"].startswith(logring.HEADER)
    assert_last_lines(log_section(crash), "INFO nikki.sync: waiting for the API")


def test_a_thread_crash_keeps_the_last_log_lines_naming_the_thread(tmp_path, db_url):
    """A thread that logs, then dies: its own run ends failure and the main thread's run gets a crash row, both
    with the last log lines, the thread's named; the process goes on as without us."""
    code = """
def work():
    worker = RunTracker("nikki-worker")
    if TRACK:
        worker.start_run()
    log.info("worker fetching page %d", 3)
    raise OSError("connection reset")
t = threading.Thread(target=work, name="syncer")
t.start(); t.join()
log.info("main thread goes on")
if TRACK:
    tracker.end_step(step, "success")
    tracker.end_run("success")
print("went on")
"""
    plain, tracked = both(tmp_path, code, db_url)
    assert tracked.returncode == plain.returncode == 0
    # runtracker says on its own logger (INFO, shown by this app's basicConfig) that the run became partial.
    own = [line for line in tracked.stderr.splitlines(keepends=True) if line.startswith("INFO runtracker:")]
    assert len(own) == 1 and "recorded as 'partial'" in own[0]
    assert tracked.stderr.replace(own[0], "") == plain.stderr and "OSError: connection reset" in plain.stderr
    db = Db(db_url)
    runs = {r["pipeline"]: r for r in db.runs()}
    worker, main = runs["nikki-worker"], runs["nikki"]
    assert worker["outcome"] == "failure" and main["outcome"] == "partial"
    (worker_crash,) = db.crash_rows(worker["id"])
    assert log_section(worker_crash) == ["INFO nikki.sync [syncer]: worker fetching page 3"]  # since its start
    (main_crash,) = db.crash_rows(main["id"])
    assert "OSError: connection reset" in main_crash["error_stack"]
    assert_last_lines(log_section(main_crash), "INFO nikki.sync [syncer]: worker fetching page 3")


def test_log_lines_zero_keeps_no_log_lines(tmp_path, db_url):
    """RUNTRACKER_LOG_LINES=0: the crash row holds the traceback alone."""
    app = PRELUDE + "raise ValueError('boom')\n"
    tracked = run_app(tmp_path, app, db_url, env={"TRACK": "1", "RUNTRACKER_LOG_LINES": "0"})
    assert tracked.returncode == 1
    db = Db(db_url)
    (crash,) = db.crash_rows(db.run()["id"])
    assert logring.HEADER not in crash["error_stack"] and "ValueError: boom" in crash["error_stack"]


def test_a_process_without_logging_config_prints_its_warnings_as_without_us(tmp_path, db_url):
    """No logging config: Python's last-resort handler still prints warnings, and logging.warning() still
    configures the root logger (the ring is no handler); the crash row still gets the warnings."""
    code = """
import logging, os, sys
from runtracker import RunTracker
if os.environ.get("TRACK") == "1":
    RunTracker("nikki").start_run()
logging.getLogger("nikki").warning("first warning, by the last-resort handler")
logging.warning("second, after basicConfig: %s", logging.getLogger().handlers != [])
logging.getLogger("nikki").info("an info line: the root level is WARNING")
raise ValueError("boom")
"""
    plain = run_app(tmp_path, code, db_url, env={"TRACK": "0"})
    tracked = run_app(tmp_path, code, db_url, env={"TRACK": "1"})
    assert tracked.returncode == plain.returncode == 1
    assert tracked.stderr == plain.stderr
    assert "first warning" in tracked.stderr and "WARNING:root:second, after basicConfig: False" in tracked.stderr
    db = Db(db_url)
    (crash,) = db.crash_rows(db.run()["id"])
    assert log_section(crash) == ["WARNING nikki: first warning, by the last-resort handler",
                                  "WARNING root: second, after basicConfig: False"]


def test_a_secret_in_a_log_line_is_not_stored(tmp_path, db_url):
    """Log lines are redacted like everything stored: a password in a URL or a pair never reaches the crash row;
    the process's own stderr still shows what it logged."""
    code = """
log.info("connecting to postgresql://sync:hunter2-Secret@db.internal/dashboard")
log.warning("retrying as %s with password=%s", "sync", "hunter2-Secret")
raise ConnectionError("database unreachable")
"""
    tracked = run_app(tmp_path, PRELUDE + code, db_url, env={"TRACK": "1"})
    assert tracked.returncode == 1 and "hunter2-Secret@db.internal" in tracked.stderr
    db = Db(db_url)
    (crash,) = db.crash_rows(db.run()["id"])
    assert "hunter2" not in crash["error_stack"]
    lines = log_section(crash)
    assert lines[-2] == "INFO nikki.sync: connecting to postgresql://sync:***@db.internal/dashboard"
    assert lines[-1] == "WARNING nikki.sync: retrying as sync with password=***"
