"""`runtracker exec --lock`: at most one running run of a pipeline per database, and a lock left by a
wrapper that was SIGKILLed does not block the next start."""

from __future__ import annotations

import contextlib
import os
import signal

from exec_support import PY, child, run_exec, start_exec

from helpers import Db, wait_until
from runtracker.exec import wrapper

WAITS_FOR_GO = """
import os, time
print("ready", os.getpid(), flush=True)
while not os.path.exists("go"):
    time.sleep(0.02)
"""


def test_two_wrappers_started_at_once_run_the_command_once(tmp_path, db_url):
    """Four --lock wrappers at once: exactly one runs the command; the others exit 75 at once, recording nothing."""
    command = child(tmp_path, WAITS_FOR_GO)
    procs = [start_exec(tmp_path, db_url, "--lock", "--", *command) for _ in range(4)]
    try:
        # The losers exit by themselves while the winner waits for "go".
        wait_until(lambda: sum(proc.poll() is not None for proc in procs) >= 3, "the three losers to exit",
                   timeout=60)
        refused = [proc for proc in procs if proc.poll() is not None]
        [winner] = [p for p in procs if p not in refused]
        assert winner.stdout.readline().startswith(b"ready ")
        for proc in refused:
            out, err = proc.communicate()
            assert proc.returncode == wrapper.EXIT_LOCKED == 75
            assert out == b""
            assert b"pipeline 'nikki' is already running" in err and b"--lock" in err
        (tmp_path / "go").write_text("")
        winner.communicate(timeout=30)
        assert winner.returncode == 0
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    [run] = Db(db_url).runs()
    assert run["outcome"] == "success"


def test_the_lock_is_released_when_the_run_ends(tmp_path, db_url):
    """Two --lock runs one after the other both run."""
    for _ in range(2):
        assert run_exec(tmp_path, db_url, "--lock", "--", "true").returncode == 0
    assert [r["outcome"] for r in Db(db_url).runs()] == ["success", "success"]


def test_without_lock_runs_may_overlap(tmp_path, db_url):
    """A run without --lock ignores a running locked one (only --lock starts take part in the lock)."""
    first = start_exec(tmp_path, db_url, "--lock", "--", *child(tmp_path, WAITS_FOR_GO))
    try:
        assert first.stdout.readline().startswith(b"ready ")
        assert run_exec(tmp_path, db_url, "--", PY, "-c", "print('overlap')").stdout == b"overlap\n"
    finally:
        (tmp_path / "go").write_text("")
        first.communicate(timeout=30)
    assert len(Db(db_url).runs()) == 2


def test_stale_lock_of_a_sigkilled_wrapper_does_not_block_the_next_start(tmp_path, db_url):
    """The wrapper holding the lock is SIGKILLed: the next --lock start reaps its run and runs."""
    first = start_exec(tmp_path, db_url, "--lock", "--", PY, "-c",
                       "import os, time; print('ready', os.getpid(), flush=True); time.sleep(60)")
    child_pid = None
    try:
        line = first.stdout.readline().split()
        assert line[0] == b"ready"
        child_pid = int(line[1])
        first.send_signal(signal.SIGKILL)  # the wrapper only: no code of ours runs, the lock row stays
        first.wait()
        second = run_exec(tmp_path, db_url, "--lock", "--", PY, "-c", "print('second ran')")
        assert second.returncode == 0, second.stderr
        assert second.stdout == b"second ran\n"
    finally:
        if child_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child_pid, signal.SIGKILL)
    db = Db(db_url)
    lost, fresh = db.runs()
    assert lost["outcome"] == "failure" and lost["reap_reason"] == "pid_gone"
    assert "process lost" in db.crash_rows(lost["id"])[0]["error_message"]
    assert fresh["outcome"] == "success"
