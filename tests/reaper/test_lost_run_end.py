"""When a lost run ended: a death a reaper saw happen (its pidfd) is the run's end, so a pipeline SIGKILLed 2 s in
lasts 2 s, not the 59 ms up to its last write; a death nobody saw ends the run at its last sign of life, and the
record says that end is an estimate, and from what (docs/reaper.md#when-a-lost-run-ended).

Real owners (subprocesses beating every 10 s, as by default) are really SIGKILLed at a moment the test knows; the
reapers are real `runtracker serve` and `runtracker monitor` processes, alone and together.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import Db, app_env, kill_2s_in, wait_until
from runtracker import RunTracker
from runtracker.base.clock import iso, now_ms, to_ms
from runtracker.core import liveness
from runtracker.core.ending import (
    END_ESTIMATED,
    END_OBSERVED,
    FROM_ACTIVITY,
    FROM_HEARTBEAT,
    FROM_SEEN_ALIVE,
    FROM_START,
)
from runtracker.monitor import pidwatch
from runtracker.storage import Runs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "browser"))

from browserlib import Dashboard, start_dashboard, stop_dashboard  # noqa: E402

pytestmark = [pytest.mark.subprocess]

# The owner's heartbeat as by default: a run's last sign of life may be up to 10 s before its death.
OWNER_BEAT = {"RUNTRACKER_HEARTBEAT_S": "10"}
SLEEP = "import time\ntime.sleep(600)\n"
# How far a recorded duration may be from the real one.
TOLERANCE_MS = 500


@pytest.fixture
def reapers(tmp_path: Path, db_url: str) -> Iterator[Callable[[str], None]]:
    """`reapers("serve+monitor")`: start those reapers on the test's database, each ready (serve answers
    /health; the monitor said it is monitoring). Stopped at teardown."""
    stops: list[Callable[[], None]] = []

    def start(which: str) -> None:
        for name in which.split("+"):
            if name == "serve":
                dashboard = start_dashboard(db_url, tmp_path / "serve" / "serve.log")

                def stop_serve(d: Dashboard = dashboard) -> None:
                    print(f"--- runtracker serve (exit {stop_dashboard(d)}) ---\n{d.output()}")

                stops.append(stop_serve)
                continue
            proc = subprocess.Popen([sys.executable, "-m", "runtracker", "monitor", "--no-alerts", "--interval",
                                     "3600"], env=app_env(db_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, cwd=tmp_path)
            assert proc.stderr is not None
            assert proc.stderr.readline().startswith("monitoring "), proc.communicate(timeout=30)

            def stop(p: subprocess.Popen[str] = proc) -> None:
                p.terminate()
                out, err = p.communicate(timeout=30)
                print(f"--- runtracker monitor (exit {p.returncode}) ---\n{out}\n{err}")  # shown if the test fails

            stops.append(stop)

    yield start
    for stop in stops:
        stop()


@pytest.mark.parametrize("which", ["serve", "monitor", "serve+monitor"])
def test_a_run_sigkilled_2s_in_lasts_2s_when_a_reaper_saw_it_die(start_owner, db_url, reapers, which):
    """Plain `runtracker serve`, `runtracker monitor`, or both on one database: the run of an owner SIGKILLed
    ~2 s into it (its last write 2 s before, its next heartbeat 8 s away) is ended once, at its death: duration
    within 0.5 s of the real one, its end `observed`, the step in progress ended then too."""
    reapers(which)
    owner = start_owner(SLEEP, env=OWNER_BEAT)
    ready_ms = now_ms()
    db = Db(db_url)
    started_ms = to_ms(db.run(owner.run_id)["started_at"])
    assert started_ms is not None
    killed_ms = kill_2s_in(owner.proc, started_ms, ready_ms)

    run = wait_until(lambda: (r := db.run(owner.run_id))["outcome"] != "running" and r, "the run to be reaped",
                     timeout=60)
    real_ms = killed_ms - started_ms
    assert run["outcome"] == "failure" and run["reap_reason"] == "pid_gone" and run["ended_by"] == "reaper"
    assert abs(run["duration_ms"] - real_ms) <= TOLERANCE_MS, (run["duration_ms"], real_ms)
    summary = json.loads(run["summary_json"])
    # Seen as it died; on a machine so loaded that the reaper got no CPU for most of a second after the death,
    # the moment it last knew the process alive (still within the tolerance): never the last write or heartbeat.
    if summary["end"] == END_OBSERVED:
        assert to_ms(summary["alive_at"]) <= killed_ms <= to_ms(run["finished_at"]), (summary, killed_ms)
    else:
        assert summary["estimated_from"] == FROM_SEEN_ALIVE, json.dumps(summary)
        assert to_ms(run["finished_at"]) <= killed_ms <= to_ms(summary["dead_by"]), (summary, killed_ms)
    assert summary["detected_by"] in {"runtracker serve", "runtracker monitor"}
    if which != "monitor":
        assert which == "serve+monitor" or summary["detected_by"] == "runtracker serve"
    assert len(db.crash_rows(owner.run_id)) == 1  # two reapers: still one end, one crash row
    sync = next(s for s in db.steps(owner.run_id) if s["step_name"] == "nikki-sync")
    assert sync["outcome"] == "failure" and sync["finished_at"] == run["finished_at"]


def test_runtracker_reap_says_the_end_is_estimated_from_the_last_heartbeat(start_owner, db_url, tmp_path):
    """No reaper saw it die: `runtracker reap` ends the run at its last sign of life (here its last heartbeat, a
    step written before it) and records `end: estimated, estimated_from: heartbeat`; `--json` says so too."""
    owner = start_owner(SLEEP, env={"RUNTRACKER_HEARTBEAT_S": "0.3"})
    db = Db(db_url)
    first_beat = db.run(owner.run_id)["heartbeat_at"]
    wait_until(lambda: db.run(owner.run_id)["heartbeat_at"] != first_beat, "a heartbeat after the start")
    os.kill(owner.proc.pid, signal.SIGKILL)
    owner.proc.wait()
    beat = db.run(owner.run_id)["heartbeat_at"]

    result = subprocess.run([sys.executable, "-m", "runtracker", "reap", "--json"], env=app_env(db_url),
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["end"] == END_ESTIMATED
    run = db.run(owner.run_id)
    assert run["finished_at"] == beat
    summary = json.loads(run["summary_json"])
    assert (summary["end"], summary["estimated_from"]) == (END_ESTIMATED, FROM_HEARTBEAT), summary


def test_reap_at_start_estimates_from_the_last_write_when_it_is_later_than_the_heartbeat(start_owner, db_url):
    """Another pipeline's start_run reaps the run of an owner killed before its next beat: the end is its last
    write (the step it started), said as `estimated_from: activity`."""
    owner = start_owner(SLEEP, env=OWNER_BEAT)
    os.kill(owner.proc.pid, signal.SIGKILL)
    owner.proc.wait()
    other = RunTracker("freescout", db=db_url)
    other.start_run()
    other.end_run("success")
    db = Db(db_url)
    run = db.run(owner.run_id)
    sync = next(s for s in db.steps(owner.run_id) if s["step_name"] == "nikki-sync")
    assert run["outcome"] == "failure" and run["finished_at"] == sync["started_at"]
    summary = json.loads(run["summary_json"])
    assert (summary["end"], summary["estimated_from"], summary["detected_by"]) == (END_ESTIMATED, FROM_ACTIVITY,
                                                                                   "start_run"), summary


def test_a_run_dead_before_any_sign_of_life_is_estimated_from_its_start(store, db_url):
    """A row whose owner wrote nothing after its start (heartbeat = start, no step): estimated from its start."""
    from reaplib import insert_running

    from helpers import dead_pid
    from runtracker.core import reaper

    started = iso(now_ms() - 5000)
    run_id = insert_running(store, pid=dead_pid(), started_at=started, heartbeat_at=started)
    (found,) = reaper.reap(store)
    assert found.end == END_ESTIMATED
    run = Db(db_url).run(run_id)
    summary = json.loads(run["summary_json"])
    assert run["finished_at"] == started and run["duration_ms"] == 0
    assert summary["estimated_from"] == FROM_START


@pytest.mark.skipif(not pidwatch.AVAILABLE, reason="pidfds need Linux")
def test_the_pidfd_wait_says_when_the_owner_was_last_alive_and_when_it_was_seen_dead(start_owner, store):
    """`Deaths.wait` returns the killed owner's run with a window that holds the kill: alive before, seen after;
    the pass has nothing to judge of an owner that is waited on."""
    owner = start_owner(SLEEP, env=OWNER_BEAT)
    deaths = pidwatch.Deaths()
    try:
        (row,) = Runs(store).running_runs()
        assert deaths.follow([row], liveness.Observer.here(60, now_ms())) == []
        assert deaths.watching(row) and deaths.wait(0) == []
        killed_ms = now_ms()
        os.kill(owner.proc.pid, signal.SIGKILL)
        (found, death), = wait_until(lambda: deaths.wait(0.25), "the pidfd to report the death")
        assert found["id"] == owner.run_id and not deaths.watching(row)
        assert death.alive_ms <= killed_ms <= death.seen_ms, (death, killed_ms)
    finally:
        deaths.close()
