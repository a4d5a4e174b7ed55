"""The wrapper's run is alive while the command runs (heartbeats), and found by the reaper when the wrapper
itself is SIGKILLed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from exec_support import child, start_exec

from helpers import Db, app_env

WAITS_FOR_A_HEARTBEAT = """
import os, time
from runtracker.storage import Runs, open_store
store = open_store()  # RUNTRACKER_DB, as the wrapper set it
run_id = int(os.environ["RUNTRACKER_RUN_ID"])
started = Runs(store).get_run(run_id)["started_at"]
deadline = time.monotonic() + 30
while Runs(store).get_run(run_id)["heartbeat_at"] == started and time.monotonic() < deadline:
    time.sleep(0.05)
print("heartbeat moved:", Runs(store).get_run(run_id)["heartbeat_at"] != started, flush=True)
"""


def test_the_wrappers_run_gets_heartbeats_while_the_command_runs(tmp_path, db_url):
    """With a short heartbeat interval, heartbeat_at moves while the command is still running."""
    proc = start_exec(tmp_path, db_url, "--", *child(tmp_path, WAITS_FOR_A_HEARTBEAT),
                      env={"RUNTRACKER_HEARTBEAT_S": "0.1"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == b"heartbeat moved: True\n"


def test_a_sigkilled_wrapper_leaves_a_run_the_reaper_ends(tmp_path, db_url):
    """SIGKILL to the wrapper: no code of ours runs; `runtracker reap` then ends its run `failure`."""
    proc = start_exec(tmp_path, db_url, "--", sys.executable, "-c",
                      "import os, time; print(os.getpid(), flush=True); time.sleep(60)")
    child_pid = int(proc.stdout.readline())
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        [run] = Db(db_url).runs()
        assert run["outcome"] == "running"
        reaped = subprocess.run([sys.executable, "-m", "runtracker", "reap"], env=app_env(db_url),
                                capture_output=True, text=True, timeout=60)
        assert reaped.returncode == 0, reaped.stderr
        assert f"reaped run {run['id']}" in reaped.stdout
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child_pid, signal.SIGKILL)
    [run] = Db(db_url).runs()
    assert run["outcome"] == "failure" and run["reap_reason"] == "pid_gone"
