"""The owner's side: one heartbeat thread per process for all its open runs, a faulthandler file while runs are
open, and both reset in a forked child."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from reaplib import crash_files, insert_running

from helpers import Db, dead_pid, run_app, wait_until
from runtracker import RunTracker
from runtracker.core import crashfile, heartbeat, liveness, reaper
from runtracker.settings import values as config


def _heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == heartbeat.THREAD_NAME]


def test_one_heartbeat_thread_beats_for_every_open_run_on_every_database(db_url, tmp_path, owner_env):
    """Three runs of three trackers on two databases: one daemon thread keeps all three heartbeats fresh, and
    it ends once the last run has ended."""
    other_db = f"sqlite:///{tmp_path / 'other' / 'dashboard.sqlite'}"
    trackers = [RunTracker("nikki", db=db_url), RunTracker("freescout", db=db_url), RunTracker("laposta", db=other_db)]
    runs = [(t, t.start_run()) for t in trackers]
    (thread,) = _heartbeat_threads()
    assert thread.daemon
    for tracker, run_id in runs:
        db = Db(tracker._db)
        wait_until(lambda db=db, run_id=run_id: db.run(run_id)["heartbeat_at"] > db.run(run_id)["started_at"],
                   f"a heartbeat on run {run_id}")
    for tracker, _ in runs[:2]:
        assert tracker.end_run("success")
    assert thread.is_alive()  # a run is still open
    assert trackers[2].end_run("success")
    thread.join(timeout=30)
    assert not thread.is_alive() and _heartbeat_threads() == []


def test_heartbeat_interval_from_argument_then_environment_then_default(monkeypatch):
    """heartbeat_s= wins, then $RUNTRACKER_HEARTBEAT_S, then 10 s; nonsense falls back to the default."""
    monkeypatch.delenv("RUNTRACKER_HEARTBEAT_S", raising=False)
    assert RunTracker("nikki").heartbeat_s == 10.0
    monkeypatch.setenv("RUNTRACKER_HEARTBEAT_S", "2.5")
    assert RunTracker("nikki").heartbeat_s == 2.5
    assert RunTracker("nikki", heartbeat_s=0.5).heartbeat_s == 0.5
    for nonsense in ("soon", "0", "-1", "nan"):
        monkeypatch.setenv("RUNTRACKER_HEARTBEAT_S", nonsense)
        assert RunTracker("nikki").heartbeat_s == 10.0


def test_heartbeat_timeout_from_argument_then_environment_then_default(monkeypatch):
    """heartbeat_timeout_s= wins, then $RUNTRACKER_HEARTBEAT_TIMEOUT_S, then 60 s."""
    monkeypatch.delenv("RUNTRACKER_HEARTBEAT_TIMEOUT_S", raising=False)
    assert RunTracker("nikki").heartbeat_timeout_s == config.heartbeat_timeout_s() == 60.0
    monkeypatch.setenv("RUNTRACKER_HEARTBEAT_TIMEOUT_S", "90")
    assert RunTracker("nikki").heartbeat_timeout_s == 90.0
    assert RunTracker("nikki", heartbeat_timeout_s=5).heartbeat_timeout_s == 5.0


FORK = """
import os, time, faulthandler
from runtracker import RunTracker
from runtracker.core.state import STATE
tracker = RunTracker("parent")
parent_run = tracker.start_run()
pid = os.fork()
if pid == 0:
    print("child inherits", STATE.heartbeat.thread() is not None, faulthandler.is_enabled(), flush=True)
    child = RunTracker("child")
    child.start_run()
    print("child beats", STATE.heartbeat.thread() is not None, faulthandler.is_enabled(), flush=True)
    time.sleep(0.5)
    child.end_run("success")
    os._exit(0)
os.waitpid(pid, 0)
time.sleep(0.5)
print("parent beats", STATE.heartbeat.thread() is not None, faulthandler.is_enabled(), flush=True)
tracker.end_run("success")
"""


def test_forked_child_has_no_heartbeat_of_the_parents_and_beats_for_its_own_runs(tmp_path, db_url, owner_env):
    """After fork the child has no heartbeat thread and no faulthandler (as without us); its own run gets
    both; the parent's heartbeat goes on."""
    result = run_app(tmp_path, FORK, db_url, env=owner_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "child inherits False False" in lines
    assert "child beats True True" in lines
    assert "parent beats True True" in lines
    db = Db(db_url)
    for run in db.runs():
        assert run["outcome"] == "success" and run["heartbeat_at"] > run["started_at"], run


LIFECYCLE = """
import os, faulthandler, time
from runtracker import RunTracker
from runtracker.core.state import STATE
crash_dir = os.environ["CRASH_DIR"]
files = lambda: sorted(f for f in os.listdir(crash_dir) if f.startswith("runtracker-crash-"))
print("before", faulthandler.is_enabled(), flush=True)
a, b = RunTracker("nikki"), RunTracker("freescout")
a.start_run(); b.start_run()
print("open", faulthandler.is_enabled(), files(), flush=True)
a.end_run("success")
print("one left", faulthandler.is_enabled(), len(files()), flush=True)
b.end_run("success")
thread = STATE.heartbeat.thread()
if thread is not None:
    thread.join()
print("none left", faulthandler.is_enabled(), files(), flush=True)
"""


def test_faulthandler_file_exists_while_runs_are_open_and_goes_with_the_last(tmp_path, db_url, owner_env,
                                                                              crash_dir):
    """faulthandler writes to one per-process file (named by host, pid and start) while any run is open; once
    the last run has ended it is disabled and the file removed."""
    crash_dir.mkdir(exist_ok=True)
    result = run_app(tmp_path, LIFECYCLE, db_url, env={**owner_env, "CRASH_DIR": str(crash_dir)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "before False"
    assert lines[1].startswith("open True ['runtracker-crash-") and f"-{_pid_of(lines[1])}-" in lines[1]
    assert lines[2] == "one left True 1"
    assert lines[3] == "none left False []"


def _pid_of(line: str) -> str:
    return line.split("-")[-2]


def test_reaper_sweeps_faulthandler_files_of_dead_processes_only(store, crash_dir, owner_env):
    """A file left by a process that died after its runs ended (e.g. by SIGTERM) is removed; files of live
    processes and of other hosts are kept."""
    import psutil

    crash_dir.mkdir(exist_ok=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        here = liveness.hostname()
        dead = crashfile.crash_file_name(here, dead_pid(), 1_700_000_000.0)
        alive = crashfile.crash_file_name(here, live.pid, psutil.Process(live.pid).create_time())
        elsewhere = crashfile.crash_file_name("worker-2", dead_pid(), 1_700_000_000.0)
        for name in (dead, alive, elsewhere):
            (crash_dir / name).write_text("")
        insert_running(store, pid=os.getpid())  # something running, so the reaper looks at all
        reaper.reap(store)
        assert crash_files(crash_dir) == sorted([alive, elsewhere])
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("name", ["a host/with slashes", ""])
def test_crash_file_name_is_a_plain_file_name_whatever_the_hostname(name):
    """Hostnames (or $RUNTRACKER_HOSTNAME) with odd characters still give one plain file name."""
    file_name = crashfile.crash_file_name(name, 42, 1.5)
    assert "/" not in file_name and file_name.endswith("-42-1500.txt")


def test_first_start_run_of_a_process_sweeps_leftover_faulthandler_files(db_url, crash_dir, owner_env):
    """A file left by a dead process is swept by the next process's first start_run, even with nothing running."""
    crash_dir.mkdir(exist_ok=True)
    leftover = crash_dir / crashfile.crash_file_name(liveness.hostname(), dead_pid(), 1_700_000_000.0)
    leftover.write_text("")
    tracker = RunTracker("nikki", db=db_url)
    tracker.start_run()
    tracker.end_run("success")
    assert not leftover.exists()
