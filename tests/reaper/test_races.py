"""Races: reapers against each other, and a reaper against the run's owner. Every end is a compare-and-set on
`running`, so each lost run is reaped exactly once, and an owner that was alive after all wins."""

from __future__ import annotations

import json
import subprocess
import sys

from reaplib import insert_running

from helpers import Db, app_env, dead_pid, run_app
from runtracker import RunTracker
from runtracker.base.clock import iso, now_ms
from runtracker.core import reaper
from runtracker.storage import Runs

REAPER = """
import json, os, sys, time
from runtracker.core import reaper
from runtracker.storage import open_store
store = open_store()
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
for lost in reaper.reap(store, heartbeat_timeout=60):
    print(lost.run_id, flush=True)
"""


def test_four_reapers_at_once_reap_each_of_fifty_dead_runs_exactly_once(tmp_path, db_url, store, owner_env):
    """50 dead runs (half on this host, half another host's with stale heartbeats), 4 reaper processes released
    at the same moment: every run reaped once, one crash row each, and the reapers' reports add up to 50."""
    pid = dead_pid()
    stale = iso(now_ms() - 5 * 60_000)
    ids = []
    for i in range(50):
        if i % 2:
            ids.append(insert_running(store, hostname="worker-2", pid=pid, heartbeat_at=stale))
        else:
            ids.append(insert_running(store, pid=pid))
        Runs(store).insert_step(run_id=ids[-1], club_slug="rondo", step_name="nikki-sync", started_at=stale)
    script = tmp_path / "reaper.py"
    script.write_text(REAPER)
    go = tmp_path / "go"
    reapers = [subprocess.Popen([sys.executable, str(script), str(go)], env=app_env(db_url, owner_env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for proc in reapers:
        assert proc.stdout.readline().strip() == "ready"
    go.write_text("")
    reported: list[int] = []
    for proc in reapers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        reported += [int(line) for line in out.split()]
    assert sorted(reported) == ids
    db = Db(db_url)
    crashes = db.query("SELECT run_id, COUNT(*) AS n FROM run_errors WHERE step_name = 'crash' GROUP BY run_id")
    assert {row["run_id"]: row["n"] for row in crashes} == {run_id: 1 for run_id in ids}
    assert {r["outcome"] for r in db.runs()} == {"failure"}
    assert {s["outcome"] for r in db.runs() for s in db.steps(r["id"])} == {"failure"}


def test_owner_end_run_after_being_reaped_wins_and_keeps_the_verdict(db_url, monkeypatch, owner_env, tmp_path):
    """A partitioned owner reaped by another host's reaper ends its run itself: its outcome and stats win, and
    reaped_at, reap_reason and the reaper's crash row record that it had been declared lost."""
    monkeypatch.setenv("RUNTRACKER_HOSTNAME", "worker-2")
    tracker = RunTracker("nikki", db=db_url, heartbeat_s=3600)
    run_id = tracker.start_run()
    step = tracker.start_step("nikki-sync")
    monkeypatch.delenv("RUNTRACKER_HOSTNAME")
    # Another process: this one never judges its own open runs.
    result = subprocess.run([sys.executable, "-m", "runtracker", "reap", "--heartbeat-timeout", "0.000001"],
                            env=app_env(db_url, owner_env), capture_output=True, text=True, timeout=60)
    assert f"reaped run {run_id}" in result.stdout, result.stderr
    db = Db(db_url)
    assert db.run(run_id)["outcome"] == "failure"

    assert tracker.end_step(step, "success", created=3)
    assert tracker.end_run("success", {"contributions": 3}) is True

    run = db.run(run_id)
    assert run["outcome"] == "success" and json.loads(run["summary_json"]) == {"contributions": 3}
    assert run["total_created"] == 3
    assert run["reap_reason"] == "heartbeat_timeout" and run["reaped_at"] is not None
    assert [s["outcome"] for s in db.steps(run_id)] == ["success"]
    assert len(db.crash_rows(run_id)) == 1


def test_owner_crash_after_being_reaped_replaces_the_verdict_with_its_own_account(tmp_path, db_url, owner_env):
    """An owner that was reaped and then dies of an exception records its own crash (with the stack): the run
    keeps the reaper's crash row and reaped_at, and gains the owner's."""
    code = """
import os, subprocess, sys
from runtracker import RunTracker
from runtracker.core import reaper
os.environ["RUNTRACKER_HOSTNAME"] = "worker-2"
tracker = RunTracker("nikki", heartbeat_s=3600)
tracker.start_run()
env = dict(os.environ); del env["RUNTRACKER_HOSTNAME"]
subprocess.run([sys.executable, "-m", "runtracker", "reap", "--heartbeat-timeout", "0.000001"], env=env, check=True)
raise RuntimeError("owner crashed after all")
"""
    result = run_app(tmp_path, code, db_url, env=owner_env)
    assert result.returncode == 1 and "reaped run" in result.stdout
    db = Db(db_url)
    run = db.run()
    assert run["outcome"] == "failure" and run["reaped_at"] is not None
    assert json.loads(run["summary_json"])["kind"] == "uncaught_exception"
    messages = sorted(e["error_message"] for e in db.crash_rows(run["id"]))
    assert len(messages) == 2
    assert messages[0].startswith("RuntimeError: owner crashed after all") and "process lost" in messages[1]


OWNER_LOOP = """
import os, sys, time, random
from runtracker import RunTracker
from runtracker.core import reaper
from runtracker.storage import Runs, open_store
tracker = RunTracker("nikki", heartbeat_s=3600)
store = open_store()
for i in range(int(sys.argv[1])):
    run_id = tracker.start_run()
    step = tracker.start_step("nikki-sync")
    tracker.end_step(step, "success", created=1)
    if i % 2 == 0:   # let the reapers win first: the owner-wins path, every other run
        while Runs(store).get_run(run_id)["outcome"] == "running":
            time.sleep(0.002)
    else:            # race them
        time.sleep(random.random() * 0.01)
    print(run_id, tracker.end_run("success", {"i": i}), flush=True)
"""

REAP_LOOP = """
import os, sys, time
from runtracker.core import reaper
from runtracker.storage import open_store
store = open_store()
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    reaper.reap(store, heartbeat_timeout=0.000001)
"""


def test_owner_racing_two_reapers_always_leaves_one_consistent_record(tmp_path, db_url, owner_env):
    """30 runs of a live owner on "another host" with no fresh heartbeat, 2 reapers reaping as fast as they can:
    every end_run returns True and every run ends `success`, either untouched by the reapers or reaped once
    (reaped_at, reap_reason, exactly one crash row) — never failure, never two crash rows, never `running`."""
    (tmp_path / "owner.py").write_text(OWNER_LOOP)
    (tmp_path / "reap.py").write_text(REAP_LOOP)
    stop = tmp_path / "stop"
    reapers = [subprocess.Popen([sys.executable, str(tmp_path / "reap.py"), str(stop)], env=app_env(db_url, owner_env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in reapers:
        assert proc.stdout.readline().strip() == "ready"
    owner = subprocess.run([sys.executable, str(tmp_path / "owner.py"), "30"], capture_output=True, text=True,
                           env=app_env(db_url, {**owner_env, "RUNTRACKER_HOSTNAME": "worker-2"}), timeout=120)
    stop.write_text("")
    for proc in reapers:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert owner.returncode == 0, owner.stderr
    ended = [line.split() for line in owner.stdout.splitlines()]
    assert len(ended) == 30 and all(ok == "True" for _, ok in ended)
    db = Db(db_url)
    reaped = 0
    for run in db.runs():
        crashes = db.crash_rows(run["id"])
        assert run["outcome"] == "success" and run["total_created"] == 1, run
        assert json.loads(run["summary_json"])["i"] >= 0
        assert [s["outcome"] for s in db.steps(run["id"])] == ["success"]
        if run["reaped_at"] is None:
            assert crashes == [] and run["reap_reason"] is None
        else:
            assert len(crashes) == 1 and run["reap_reason"] == "heartbeat_timeout"
            reaped += 1
    assert reaped >= 15  # at least every other run went through the owner-wins path


def _refuse_ending(store, run_id: int) -> None:
    """Another tool's trigger that makes one run impossible to end (any UPDATE of it fails)."""
    with store.transaction() as cur:
        if store.dialect == "sqlite":
            cur.execute(f"CREATE TRIGGER refuse BEFORE UPDATE OF outcome ON runs WHEN OLD.id = {run_id}"
                        " BEGIN SELECT RAISE(ABORT, 'run is frozen by another tool'); END")
        else:
            cur.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
                        " $$ BEGIN RAISE EXCEPTION 'run is frozen by another tool'; END $$")
            cur.execute(f"CREATE TRIGGER refuse BEFORE UPDATE OF outcome ON runs FOR EACH ROW"
                        f" WHEN (OLD.id = {run_id}) EXECUTE FUNCTION refuse()")


def test_a_run_the_reaper_cannot_end_is_logged_and_skipped_and_the_others_are_reaped(store, db_url, caplog,
                                                                                       owner_env):
    """One dead run that cannot be ended (a trigger of another tool refuses it) costs only itself: the reaper
    logs it and ends the dead runs before and after it."""
    pid = dead_pid()
    first, frozen, last = (insert_running(store, pid=pid) for _ in range(3))
    _refuse_ending(store, frozen)
    found = reaper.reap(store)
    assert sorted(r.run_id for r in found) == [first, last]
    db = Db(db_url)
    assert [db.run(r)["outcome"] for r in (first, frozen, last)] == ["failure", "running", "failure"]
    assert f"reaping run {frozen} failed, skipped" in caplog.text and "frozen by another tool" in caplog.text
