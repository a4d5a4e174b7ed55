"""How the reaper judges an owner: same host by pid and start time at once, another host by heartbeat age only.

Rows are written through the store with the ownership facts each case needs; owners that must really live or
really die are real subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from reaplib import insert_running

from helpers import Db, dead_pid, wait_until
from runtracker import RunTracker
from runtracker.base.clock import iso, ms_between, now_ms
from runtracker.core import liveness, reaper
from runtracker.storage import Runs


def _ago(seconds: float) -> str:
    return iso(now_ms() - int(seconds * 1000))


@pytest.fixture
def sleeper():
    """A live process that is not the owner of anything."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _reaped_ids(store, **kw) -> list[int]:
    return [r.run_id for r in reaper.reap(store, **kw)]


@pytest.mark.skipif(liveness.host_key() is None, reason="process keys need Linux /proc")
def test_alive_pid_with_another_start_is_reaped_as_pid_reuse(store, db_url, sleeper):
    """A live pid whose start (clock ticks since boot) differs from the owner's is a reused pid: reaped at once."""
    reused = insert_running(store, pid=sleeper.pid, process_key=f"{liveness.host_key()}:1",
                            heartbeat_at=_ago(0))
    owner = insert_running(store, pid=sleeper.pid, process_key=liveness.process_key(sleeper.pid),
                           heartbeat_at=_ago(0))
    assert _reaped_ids(store) == [reused]
    run = Db(db_url).run(reused)
    assert run["outcome"] == "failure" and run["reap_reason"] == "pid_reused"
    assert "now belongs to another process" in Db(db_url).crash_rows(reused)[0]["error_message"]
    assert Db(db_url).run(owner)["outcome"] == "running"


def test_alive_pid_with_another_start_time_is_reaped_where_there_is_no_process_key(store, sleeper):
    """Without a process key (macOS, older rows) psutil's start time tells a reused pid from the owner."""
    import psutil

    started = psutil.Process(sleeper.pid).create_time()
    reused = insert_running(store, pid=sleeper.pid, process_started_at=started - 3600, heartbeat_at=_ago(0))
    owner = insert_running(store, pid=sleeper.pid, process_started_at=started, heartbeat_at=_ago(0))
    found = reaper.reap(store)
    assert [(r.run_id, r.reason) for r in found] == [(reused, "pid_reused")]
    assert Runs(store).get_run(owner)["outcome"] == "running"


def test_zombie_owner_is_reaped_as_gone(store):
    """A killed owner its parent has not waited for yet still has a pid, but is dead: reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    key, started = liveness.process_key(proc.pid), liveness.process_start_time(proc.pid)
    proc.kill()
    wait_until(lambda: liveness.process_key(proc.pid) is None or _is_zombie(proc.pid), "the zombie")
    try:
        run_id = insert_running(store, pid=proc.pid, process_key=key, process_started_at=started,
                                heartbeat_at=_ago(0))
        found = reaper.reap(store)
        assert [(r.run_id, r.reason) for r in found] == [(run_id, "pid_gone")]
    finally:
        proc.wait()


def _is_zombie(pid: int) -> bool:
    import psutil

    return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_same_host_needs_no_heartbeat_timeout(store):
    """A gone pid on this host is reaped even with a heartbeat written a moment ago."""
    run_id = insert_running(store, pid=dead_pid(), heartbeat_at=_ago(0))
    assert _reaped_ids(store, heartbeat_timeout=3600) == [run_id]


def test_other_host_is_reaped_only_after_its_heartbeat_is_older_than_the_timeout(store, db_url):
    """Another host's pid means nothing here: a 30 s old heartbeat stays, a 61 s old one is lost (timeout 60 s)."""
    fresh = insert_running(store, hostname="worker-2", pid=os.getpid(), heartbeat_at=_ago(30))
    stale = insert_running(store, hostname="worker-2", pid=os.getpid(), heartbeat_at=_ago(61))
    gone_pid = insert_running(store, hostname="worker-3", pid=dead_pid(), heartbeat_at=_ago(0))
    found = reaper.reap(store, heartbeat_timeout=60)
    assert [(r.run_id, r.reason) for r in found] == [(stale, "heartbeat_timeout")]
    db = Db(db_url)
    assert db.run(fresh)["outcome"] == db.run(gone_pid)["outcome"] == "running"
    run = db.run(stale)
    assert run["outcome"] == "failure" and run["reap_reason"] == "heartbeat_timeout"
    assert run["finished_at"] == run["heartbeat_at"]  # the last moment it was known alive
    assert "no heartbeat from pid" in db.crash_rows(stale)[0]["error_message"]


def test_heartbeat_timeout_comes_from_the_environment(store, monkeypatch):
    """$RUNTRACKER_HEARTBEAT_TIMEOUT_S sets the timeout when no argument does."""
    run_id = insert_running(store, hostname="worker-2", pid=1, heartbeat_at=_ago(20))
    assert _reaped_ids(store) == []
    monkeypatch.setenv("RUNTRACKER_HEARTBEAT_TIMEOUT_S", "10")
    assert _reaped_ids(store) == [run_id]


@pytest.mark.skipif(liveness.host_key() is None, reason="process keys need Linux /proc")
def test_same_hostname_on_another_boot_or_pid_namespace_is_judged_by_heartbeat(store):
    """A cloned machine or a container sharing our hostname: its pids are not ours to check."""
    elsewhere = "linux:00000000-0000-0000-0000-000000000000:4026531836:12345"
    fresh = insert_running(store, pid=dead_pid(), process_key=elsewhere, heartbeat_at=_ago(1))
    stale = insert_running(store, pid=dead_pid(), process_key=elsewhere, heartbeat_at=_ago(120))
    found = reaper.reap(store, heartbeat_timeout=60)
    assert [(r.run_id, r.reason) for r in found] == [(stale, "heartbeat_timeout")]
    assert Runs(store).get_run(fresh)["outcome"] == "running"


def test_finished_at_is_the_last_sign_of_life(store, db_url):
    """finished_at is the latest of heartbeat, step start/end and error; duration runs up to it."""
    run_id = insert_running(store, hostname="worker-2", pid=1, started_at="2026-01-01T00:00:00.000Z",
                            heartbeat_at="2026-01-01T00:00:10.000Z")
    step = Runs(store).insert_step(run_id=run_id, club_slug="rondo", step_name="nikki-sync",
                                   started_at="2026-01-01T00:00:12.000Z")
    Runs(store).insert_errors([(run_id, step, "rondo", "nikki-sync", "KNVB1004", "member not found", None,
                                "2026-01-01T00:00:14.500Z")])
    reaper.reap(store, heartbeat_timeout=60)
    run = Db(db_url).run(run_id)
    assert run["finished_at"] == "2026-01-01T00:00:14.500Z" and run["duration_ms"] == 14500
    (sync,) = Db(db_url).steps(run_id)
    assert sync["outcome"] == "failure" and sync["finished_at"] == "2026-01-01T00:00:14.500Z"
    assert sync["duration_ms"] == 2500 and json.loads(sync["detail_json"]) == {"crash": "lost"}
    summary = json.loads(run["summary_json"])
    assert summary["last_heartbeat_at"] == "2026-01-01T00:00:10.000Z"
    assert summary["detected_at"] == run["reaped_at"]


def test_start_run_never_reaps_the_callers_own_open_runs(db_url, monkeypatch, owner_env):
    """Our own open run, made to look like another host's lost run, survives our next start_run."""
    monkeypatch.setenv("RUNTRACKER_HOSTNAME", "worker-2")
    first = RunTracker("nikki", db=db_url, heartbeat_s=3600)
    first_id = first.start_run()
    monkeypatch.delenv("RUNTRACKER_HOSTNAME")
    second = RunTracker("freescout", db=db_url, heartbeat_timeout_s=0.000001)
    second.start_run()
    assert Db(db_url).run(first_id)["outcome"] == "running"
    assert second.end_run("success") and first.end_run("success")
    assert Db(db_url).run(first_id)["reaped_at"] is None


def test_real_owner_on_another_host_is_reaped_by_heartbeat_after_sigkill(start_owner, db_url, store):
    """An owner that calls itself worker-2 heartbeats; once SIGKILLed, its heartbeat ages and it is reaped."""
    owner = start_owner("time.sleep(60)\n", env={"RUNTRACKER_HOSTNAME": "worker-2"})
    runs = Runs(store)
    wait_until(lambda: runs.get_run(owner.run_id)["heartbeat_at"] != runs.get_run(owner.run_id)["started_at"],
               "a heartbeat")
    owner.proc.kill()
    owner.finish()
    found = wait_until(lambda: reaper.reap(store, heartbeat_timeout=1.0), "the reaper to find the run")
    assert [(r.run_id, r.reason) for r in found] == [(owner.run_id, "heartbeat_timeout")]
    assert "worker-2" in Db(db_url).crash_rows(owner.run_id)[0]["error_message"]


def test_run_found_weeks_after_its_host_vanished_fits_the_duration_column(store, db_url):
    """A 40-day run whose host vanished: its duration (more than 32 bits of milliseconds) is stored whole."""
    run_id = insert_running(store, hostname="worker-2", pid=1, started_at=_ago(40 * 86400), heartbeat_at=_ago(61))
    Runs(store).insert_step(run_id=run_id, club_slug="rondo", step_name="nikki-sync", started_at=_ago(40 * 86400))
    assert _reaped_ids(store) == [run_id]
    run = Db(db_url).run(run_id)
    assert run["outcome"] == "failure" and run["duration_ms"] > 2**31
    assert run["duration_ms"] == ms_between(run["started_at"], run["finished_at"])
    step = Db(db_url).steps(run_id)[0]
    assert step["duration_ms"] == ms_between(step["started_at"], step["finished_at"]) > 2**31


def test_the_probe_of_running_runs_uses_the_partial_index(sqlite_url):
    """The reaper's look at `running` runs (at every start_run) searches idx_runs_running, not the table."""
    import sqlite3

    from helpers import open_fresh
    from runtracker.storage.runs import RUN_COLUMNS

    open_fresh(sqlite_url).close()
    conn = sqlite3.connect(sqlite_url[len("sqlite:///"):])
    plan = conn.execute(
        f"EXPLAIN QUERY PLAN SELECT {RUN_COLUMNS} FROM runs WHERE outcome = 'running' ORDER BY id").fetchall()
    conn.close()
    assert [row[3] for row in plan] == ["SEARCH runs USING INDEX idx_runs_running (outcome=?)"]


def _ownerless(store, pipeline: str, started_s_ago: float) -> int:
    """A `running` row as the original tool writes it: no host, pid or heartbeat."""
    with store.transaction() as cur:
        return store.insert_returning_id(cur, "INSERT INTO runs (pipeline, started_at, outcome) VALUES (?, ?, ?)",
                                         (pipeline, _ago(started_s_ago), "running"))


def test_a_live_run_of_a_tool_that_records_no_owner_is_never_reaped_within_hours(store, db_url, monkeypatch):
    """The original tool's runs record no owner: judged neither by a pid nor by the 60 s heartbeat timeout, but
    only once older than the ownerless timeout (6 h by default), with a message saying why."""
    monkeypatch.delenv("RUNTRACKER_OWNERLESS_TIMEOUT", raising=False)
    working = _ownerless(store, "laposta", 3 * 3600)
    lost = _ownerless(store, "laposta", 7 * 3600)
    found = reaper.reap(store, heartbeat_timeout=1)
    assert [(r.run_id, r.reason) for r in found] == [(lost, "ownerless_timeout")]
    assert Runs(store).get_run(working)["outcome"] == "running"
    message = Db(db_url).crash_rows(lost)[0]["error_message"]
    assert "records no owner" in message and "running for 7.0 h" in message and "ownerless timeout of 6.0 h" in message


def test_the_ownerless_timeout_comes_from_the_environment_and_per_pipeline_from_the_config_file(
        store, tmp_path, monkeypatch):
    """$RUNTRACKER_OWNERLESS_TIMEOUT sets it for all; `ownerless_timeout` in [pipelines.NAME] for one pipeline."""
    config = tmp_path / "runtracker.toml"
    config.write_text('[pipelines.backup]\nownerless_timeout = "24h"\n')
    monkeypatch.setenv("RUNTRACKER_CONFIG", str(config))
    monkeypatch.setenv("RUNTRACKER_OWNERLESS_TIMEOUT", "2h")
    sync = _ownerless(store, "laposta", 3 * 3600)
    backup = _ownerless(store, "backup", 12 * 3600)
    assert [r.run_id for r in reaper.reap(store)] == [sync]
    assert Runs(store).get_run(backup)["outcome"] == "running"
