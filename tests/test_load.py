"""A small version of bench/load.py on each backend: concurrent pipeline processes (one of them "another host")
lose no row and leave no run `running`; with some SIGKILLed mid-run, every killed run is reaped and every
finished run is intact. Invariants only: the speed lives in the benchmark."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# bench/load.py by path: putting bench/ on sys.path would let its module names shadow others.
LOAD_PY = Path(__file__).resolve().parent.parent / "bench" / "load.py"
_spec = importlib.util.spec_from_file_location("bench_load", LOAD_PY)
assert _spec is not None and _spec.loader is not None
load = sys.modules["bench_load"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load)

SLOTS, RUNS, OTHER_HOSTS = 4, 20, 1
# Beat often so that the end-of-test reaper need not wait long for the other host's killed runs; the timeout
# stays ten beats, so a live run on the other host is never declared lost while the load runs.
HEARTBEAT = (0.5, 5.0)


def backend_of(url: str) -> str:
    return url.split(":", 1)[0]


def test_concurrent_processes_lose_no_row_and_leave_no_run_running(db_url, tmp_path):
    """4 processes × 20 runs (5 steps, 20 errors each) at once, one as another host: every row is there."""
    clean, _ = load.plan(SLOTS, RUNS, kill_every=3, per_slot=4)
    phase = load.run_phase(backend_of(db_url), "clean", db_url, tmp_path, clean, OTHER_HOSTS, HEARTBEAT)
    load.check(phase, db_url, heartbeat_timeout=HEARTBEAT[1])
    assert phase.problems == []
    assert len(phase.finished) == SLOTS * RUNS and phase.raised == 0 and phase.logged == []


def test_processes_killed_mid_run_are_reaped_and_finished_runs_stay_intact(db_url, tmp_path):
    """The same load in shorter processes, every third SIGKILLed inside a step: each killed run is reaped
    (on this host and on the other), each finished run has all its rows."""
    _, kill = load.plan(SLOTS, RUNS, kill_every=3, per_slot=4)
    phase = load.run_phase(backend_of(db_url), "kill", db_url, tmp_path, kill, OTHER_HOSTS, HEARTBEAT)
    load.check(phase, db_url, heartbeat_timeout=HEARTBEAT[1])
    assert phase.problems == []
    assert len(phase.killed) == 5 and phase.killed_on_other_host >= 1
    # A victim runs 5 runs: 2 finish, the 3rd is killed, 2 never start.
    assert len(phase.finished) == SLOTS * RUNS - 3 * len(phase.killed)
