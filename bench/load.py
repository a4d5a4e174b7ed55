"""Load: many pipeline processes writing to one database at once, on SQLite and on PostgreSQL (`make bench-load`).

Two phases per backend, each on a fresh database:

1. clean: `procs` processes × `runs` runs, each run = start_run, 5 × (start_step, 4 × record_error, end_step),
   end_run; 2 of every 8 processes pretend to be another host ($RUNTRACKER_HOSTNAME). Expected: every row
   there (0 lost), 0 runs left `running`, 0 exceptions raised into the pipeline and 0 errors logged by the
   never-raise guard, no run ever declared lost by a reaper. Reports runs/s and the latency of each call.
2. kill: the same number of runs by `procs` concurrent slots, each running `per_slot` shorter processes in
   turn; every `kill_every`-th process is SIGKILLed in the middle of a run (inside its 4th step). Expected:
   every killed run ended `failure` by the reaper (at the next start_run, or `reap` at the end) with a crash
   row and its finished steps intact, every finished run intact, nothing else changed.

Heartbeats beat every second and another host's run is lost after 10 s without one, so reapers at every
start_run judge the other host's live runs all along: a false positive would show as a finished run with
`reaped_at` set.

    python bench/load.py                      # 8 × 500 runs, both backends
    python bench/load.py --procs 4 --runs 20  # smaller
    RUNTRACKER_BENCH_PG=postgresql://... python bench/load.py --backends postgresql
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PG_ENV = "RUNTRACKER_BENCH_PG"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
OTHER_HOST = "load-other-host"
STEPS, ERRORS_PER_STEP = 5, 4
PAUSE_STEP, PAUSE_ERRORS = 3, 2  # a victim stops inside its 4th step, after 2 of its errors
CALLS = ("start_run", "start_step", "record_error", "end_step", "end_run")
# (heartbeat interval, another host's heartbeat timeout), seconds.
HEARTBEAT = (1.0, 10.0)


# -- the worker: one pipeline process ----------------------------------------------------------------------
def worker(runs: int, pause_at: int | None) -> None:
    """Run `runs` lifecycles, timing every call; at run `pause_at`, stop mid-run and wait to be killed.
    Prints one JSON line: the run ids, per-call latencies (ms), exceptions raised and errors logged."""
    sys.path.insert(0, str(SRC))
    from runtracker import RunTracker

    logged = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append(record.getMessage())

    logging.getLogger("runtracker").addHandler(Count(logging.ERROR))
    latency: dict[str, list[float]] = {name: [] for name in CALLS}
    raised = 0

    def call(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal raised
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except Exception:
            raised += 1
            return None
        finally:
            latency[name].append((time.perf_counter() - start) * 1000)

    ids = []
    tracker = RunTracker(f"load-{os.getpid() % 7}")
    for n in range(runs):
        run_id = call("start_run", tracker.start_run)
        for s in range(STEPS):
            step = call("start_step", tracker.start_step, f"step-{s}")
            for e in range(ERRORS_PER_STEP):
                if n == pause_at and s == PAUSE_STEP and e == PAUSE_ERRORS:
                    print(json.dumps({"paused": run_id, "runs": ids}), flush=True)
                    time.sleep(600)
                call("record_error", tracker.record_error, step_name=f"step-{s}", step_id=step,
                     member_identifier=f"M{n}-{s}-{e}", error_message=f"member {e} failed: 100% sure?")
            call("end_step", tracker.end_step, step, "partial", created=s + 1, updated=1, failed=ERRORS_PER_STEP)
        call("end_run", tracker.end_run, "partial", {"n": n})
        ids.append(run_id)
    print(json.dumps({"runs": ids, "latency": latency, "raised": raised, "logged": logged}), flush=True)


# -- the parent: start, kill, check -----------------------------------------------------------------------
@dataclass
class Phase:
    backend: str
    name: str
    finished: list[int] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    killed_on_other_host: int = 0
    latency: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in CALLS})
    raised: int = 0
    logged: list[str] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def runs_per_s(self) -> float:
        return len(self.finished) / self.seconds if self.seconds else 0.0


def _env(url: str, workdir: Path, other_host: bool, heartbeat: tuple[float, float]) -> dict[str, str]:
    env = dict(os.environ)
    env["RUNTRACKER_HEARTBEAT_S"], env["RUNTRACKER_HEARTBEAT_TIMEOUT_S"] = map(str, heartbeat)
    env["RUNTRACKER_DB"] = url
    env["RUNTRACKER_CRASH_DIR"] = str(workdir / "crash")
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    if other_host:
        env["RUNTRACKER_HOSTNAME"] = OTHER_HOST
    else:
        env.pop("RUNTRACKER_HOSTNAME", None)
    return env


def _slot(phase: Phase, lock: threading.Lock, url: str, workdir: Path, other_host: bool,
          jobs: list[tuple[int, int | None]], heartbeat: tuple[float, float]) -> None:
    """One concurrency slot: its processes one after another; a victim is killed once it says it paused."""
    for runs, pause_at in jobs:
        env = _env(url, workdir, other_host, heartbeat)
        proc = subprocess.Popen([sys.executable, __file__, "worker", str(runs), str(pause_at)], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        if pause_at is not None:
            line = proc.stdout.readline() if proc.stdout else ""
            proc.kill()
            _, err = proc.communicate()
            with lock:
                try:
                    paused = json.loads(line)
                    phase.killed.append(int(paused["paused"]))
                    phase.killed_on_other_host += other_host
                    phase.finished += paused["runs"]
                except (ValueError, KeyError, TypeError):
                    phase.problems.append(f"a victim did not pause: {line!r} {err[-2000:]}")
            continue
        out, err = proc.communicate()
        with lock:
            if proc.returncode != 0 or not out.strip():
                phase.problems.append(f"a worker exited {proc.returncode}: {err[-2000:]}")
                continue
            report = json.loads(out.strip().splitlines()[-1])
            phase.finished += [r for r in report["runs"] if r is not None]
            phase.problems += [f"start_run returned None in a worker ({err[-500:]})"] * report["runs"].count(None)
            phase.raised += report["raised"]
            phase.logged += report["logged"]
            for name, values in report["latency"].items():
                phase.latency[name] += values


def run_phase(backend: str, name: str, url: str, workdir: Path, slots: list[list[tuple[int, int | None]]],
              other_hosts: int, heartbeat: tuple[float, float] = HEARTBEAT) -> Phase:
    """Run the slots at once (the last `other_hosts` slots as another host) and collect what the workers did."""
    phase = Phase(backend, name)
    lock = threading.Lock()
    threads = [threading.Thread(target=_slot, args=(phase, lock, url, workdir, i >= len(slots) - other_hosts, jobs,
                                                     heartbeat))
               for i, jobs in enumerate(slots)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.seconds = time.perf_counter() - began
    return phase


def plan(procs: int, runs: int, kill_every: int, per_slot: int) -> tuple[list[list[tuple[int, int | None]]],
                                                                        list[list[tuple[int, int | None]]]]:
    """(clean, kill) jobs per slot: (runs, pause_at). In the kill phase process j of slot s has the global
    index j * procs + s, and every kill_every-th is a victim, so victims fall on every slot, other hosts too."""
    clean = [[(runs, None)] for _ in range(procs)]
    each = max(runs // per_slot, 2)
    kill = [[(each, each // 2 if (j * procs + s) % kill_every == kill_every - 1 else None) for j in range(per_slot)]
            for s in range(procs)]
    return clean, kill


# -- checking the database --------------------------------------------------------------------------------
def check(phase: Phase, url: str, *, heartbeat_timeout: float = HEARTBEAT[1], reap_within: float = 60.0) -> None:
    """Reap what is left (another host's runs once their heartbeat is older than the timeout), then compare
    every row with what the workers did; what differs goes to `phase.problems`."""
    sys.path.insert(0, str(SRC))
    from runtracker.core import reaper
    from runtracker.storage import Runs, open_store

    os.environ["RUNTRACKER_CRASH_DIR"] = str(Path(tempfile.gettempdir()) / "runtracker-load-crash")
    store = open_store(url)
    try:
        deadline = time.monotonic() + reap_within
        while True:
            reaper.reap(store, heartbeat_timeout=heartbeat_timeout)
            if not Runs(store).running_runs() or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        _compare(phase, store)
    finally:
        store.close()


def _compare(phase: Phase, store: Any) -> None:
    p = phase.problems
    steps_per_run = store.read("SELECT run_id, COUNT(*) AS n, SUM(created_count) AS c FROM run_steps GROUP BY run_id")
    steps = {r["run_id"]: (int(r["n"]), int(r["c"])) for r in steps_per_run}
    errors = {r["run_id"]: int(r["n"])
              for r in store.read("SELECT run_id, COUNT(*) AS n FROM run_errors GROUP BY run_id")}
    crashes = {r["run_id"]: int(r["n"]) for r in store.read(
        "SELECT run_id, COUNT(*) AS n FROM run_errors WHERE step_name = 'crash' GROUP BY run_id")}
    runs = {r["id"]: r for r in store.read("SELECT id, outcome, total_created, reaped_at, hostname FROM runs")}
    expected = set(phase.finished) | set(phase.killed)
    if set(runs) - expected:
        p.append(f"{len(set(runs) - expected)} runs in the database that no worker started")
    if missing := expected - set(runs):
        p.append(f"{len(missing)} runs lost")
    full_created = sum(range(1, STEPS + 1))
    for run_id in phase.finished:
        run = runs.get(run_id)
        if run is None:
            continue
        if (run["outcome"], run["total_created"], run["reaped_at"]) != ("partial", full_created, None):
            p.append(f"finished run {run_id} is not intact: {run}")
        if steps.get(run_id) != (STEPS, full_created) or errors.get(run_id) != STEPS * ERRORS_PER_STEP:
            p.append(f"finished run {run_id} has {steps.get(run_id)} steps and {errors.get(run_id)} errors")
    done_created = sum(range(1, PAUSE_STEP + 1))
    for run_id in phase.killed:
        run = runs.get(run_id)
        if run is None:
            continue
        if run["outcome"] != "failure" or run["reaped_at"] is None or crashes.get(run_id) != 1:
            p.append(f"killed run {run_id} was not reaped: {run}, crash rows {crashes.get(run_id)}")
        kept = PAUSE_STEP * ERRORS_PER_STEP + PAUSE_ERRORS + 1
        if steps.get(run_id) != (PAUSE_STEP + 1, done_created) or errors.get(run_id) != kept:
            p.append(f"killed run {run_id} lost rows: {steps.get(run_id)} steps, {errors.get(run_id)} errors")
    if running := [r for r in runs.values() if r["outcome"] == "running"]:
        p.append(f"{len(running)} runs left running")
    if not any(r["hostname"] == OTHER_HOST for r in runs.values()):
        p.append("no run recorded the other host")
    if phase.raised:
        p.append(f"{phase.raised} exceptions raised into the pipeline")
    if phase.logged:
        p.append(f"{len(phase.logged)} errors logged by the guard, e.g. {phase.logged[0]}")


# -- databases ----------------------------------------------------------------------------------------------
@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'load-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    import psycopg

    server = os.environ.get(PG_ENV) or PG_DEFAULT
    schema = f"rt_load_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{server}{'&' if '?' in server else '?'}options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def run_load(backends: list[str], procs: int, runs: int, other_hosts: int, kill_every: int, per_slot: int,
             log: Any = print) -> list[Phase]:
    """Both phases on every backend; each phase checked against its database."""
    clean, kill = plan(procs, runs, kill_every, per_slot)
    phases = []
    with tempfile.TemporaryDirectory(prefix="runtracker-load-") as tmp:
        workdir = Path(tmp)
        for backend in backends:
            for name, slots in (("clean", clean), ("kill", kill)):
                with database(backend, workdir) as url:
                    log(f"{backend}: {name} phase, {procs} processes at once …")
                    phase = run_phase(backend, name, url, workdir, slots, other_hosts)
                    check(phase, url)
                    phases.append(phase)
    return phases


# -- one process: the tracker against raw psycopg doing the same commits ---------------------------------------
def raw_ratio(url: str, rounds: int = 11, batch: int = 10) -> tuple[float, float, float]:
    """(tracker ms, raw ms, tracker / raw) per lifecycle on PostgreSQL, one process, alternating side by side.
    Raw: hand-written psycopg, one BEGIN … COMMIT per call as the tracker does, the same inserts and updates."""
    sys.path.insert(0, str(SRC))
    import psycopg

    from runtracker import RunTracker

    tracker = RunTracker("raw-ratio", db=url, retention_days=0)
    conn = psycopg.connect(url, autocommit=True)
    now = "2026-01-01T00:00:00.000Z"

    def tx(sql: str, params: tuple[Any, ...], returning: bool = False) -> Any:
        cur = conn.cursor()
        cur.execute("BEGIN")
        cur.execute(sql, params)
        row = cur.fetchone() if returning else None
        cur.execute("COMMIT")
        return row

    def raw() -> None:
        run_id = tx("INSERT INTO runs (pipeline, club_slug, started_at, outcome, hostname, pid, heartbeat_at)"
                    " VALUES (%s, 'rondo', %s, 'running', 'h', 1, %s) RETURNING id", ("raw", now, now), True)[0]
        for s in range(STEPS):
            step = tx("INSERT INTO run_steps (run_id, club_slug, step_name, started_at) VALUES (%s, 'rondo', %s, %s)"
                      " RETURNING id", (run_id, f"step-{s}", now), True)[0]
            for e in range(ERRORS_PER_STEP):
                tx("INSERT INTO run_errors (run_id, run_step_id, club_slug, step_name, member_identifier,"
                   " error_message, created_at) VALUES (%s, %s, 'rondo', %s, %s, 'failed', %s)",
                   (run_id, step, f"step-{s}", f"M{e}", now))
            tx("UPDATE run_steps SET finished_at = %s, duration_ms = 1, outcome = 'partial', created_count = %s"
               " WHERE id = %s", (now, s + 1, step))
        tx("UPDATE runs SET finished_at = %s, duration_ms = 1, outcome = 'partial' WHERE id = %s", (now, run_id))

    def ours() -> None:
        tracker.start_run()
        for s in range(STEPS):
            step = tracker.start_step(f"step-{s}")
            for e in range(ERRORS_PER_STEP):
                tracker.record_error(step_name=f"step-{s}", step_id=step, member_identifier=f"M{e}",
                                     error_message="failed")
            tracker.end_step(step, "partial", created=s + 1)
        tracker.end_run("partial")

    sides = {"ours": ours, "raw": raw}
    times: dict[str, list[float]] = {"ours": [], "raw": []}
    ours()  # warm up: connections, prepared statements
    raw()
    for r in range(rounds):
        for name in (("ours", "raw") if r % 2 == 0 else ("raw", "ours")):
            began = time.perf_counter()
            for _ in range(batch):
                sides[name]()
            times[name].append((time.perf_counter() - began) / batch * 1000)
    conn.close()
    ratios = sorted(a / b for a, b in zip(times["ours"], times["raw"], strict=True))
    return (sorted(times["ours"])[rounds // 2], sorted(times["raw"])[rounds // 2], ratios[rounds // 2])


# -- report -------------------------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(phases: list[Phase], procs: int, runs: int) -> str:
    lines = [f"Load: {procs} processes × {runs} runs (5 steps, 20 errors each), 2 of 8 on another host; "
             f"then the same load with 1 in 10 processes SIGKILLed mid-run.", "",
             "| backend | phase | runs finished intact | killed → reaped (other host) | runs/s | problems |",
             "|---|---|---|---|---|---|"]
    for ph in phases:
        lines.append(f"| {ph.backend} | {ph.name} | {len(ph.finished)} | {len(ph.killed)} ({ph.killed_on_other_host})"
                     f" | {ph.runs_per_s:.0f} | {len(ph.problems) or 'none'} |")
    lines += ["", "Latency per call in the clean phase, ms (p50 / p95 / p99 / max):", "",
              "| call | " + " | ".join(ph.backend for ph in phases if ph.name == "clean") + " |",
              "|---|" + "---|" * sum(ph.name == "clean" for ph in phases)]
    for call in CALLS:
        cells = [" / ".join(f"{_pct(ph.latency[call], q):.2f}" for q in (0.5, 0.95, 0.99, 1.0))
                 for ph in phases if ph.name == "clean"]
        lines.append(f"| {call} | " + " | ".join(cells) + " |")
    lifecycle = {ph.backend: sum(sum(ph.latency[c]) for c in CALLS) / max(len(ph.finished), 1)
                 for ph in phases if ph.name == "clean"}
    if len(lifecycle) == 2:
        ratio = lifecycle.get("postgresql", 0) / max(lifecycle.get("sqlite", 1e-9), 1e-9)
        lines += ["", "Time in tracker calls per run: " + ", ".join(f"{b} {v:.2f} ms" for b, v in lifecycle.items())
                  + f" (postgresql / sqlite = {ratio:.2f})"]
    return "\n".join(lines)


def _write_results(phases: list[Phase], procs: int, runs: int, ratio: float | None) -> None:
    """The full run's results into bench/RESULTS.md (section `load`), with the machine they came from."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from datetime import UTC, datetime

    import psycopg
    from benchlib import machine, write_section

    server = os.environ.get(PG_ENV) or PG_DEFAULT
    with psycopg.connect(server) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
    where = ", ".join(f"{k} {v}" for k, v in machine().items())
    text = (f"## Load (`make bench-load`), {datetime.now(UTC):%Y-%m-%d}\n\n{where}; PostgreSQL {version} on the "
            f"same machine (synchronous_commit={sync}), over TCP to 127.0.0.1.\n\n" + report(phases, procs, runs))
    if ratio is not None:
        text += f"\n\nOne process, PostgreSQL lifecycle, tracker / raw psycopg with the same commits: {ratio:.2f}"
    write_section("load", text)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "worker":
        worker(int(args[1]), None if args[2] == "None" else int(args[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--runs", type=int, default=500, help="runs per process")
    parser.add_argument("--other-hosts", type=int, default=2, help="processes pretending to be another host")
    parser.add_argument("--kill-every", type=int, default=10, help="SIGKILL every n-th process (kill phase)")
    parser.add_argument("--per-slot", type=int, default=10, help="processes per slot in the kill phase")
    opts = parser.parse_args(args)
    phases = run_load(opts.backends.split(","), opts.procs, opts.runs, opts.other_hosts, opts.kill_every,
                      opts.per_slot, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(report(phases, opts.procs, opts.runs))
    ratio = None
    if "postgresql" in opts.backends.split(","):
        with database("postgresql", Path(tempfile.gettempdir())) as url:
            ours_ms, raw_ms, ratio = raw_ratio(url)
        print(f"\nOne process, PostgreSQL lifecycle: tracker {ours_ms:.2f} ms, raw psycopg with the same commits"
              f" {raw_ms:.2f} ms: ratio {ratio:.2f} (median of paired rounds)")
    if (opts.procs, opts.runs, opts.backends) == (8, 500, "sqlite,postgresql"):
        _write_results(phases, opts.procs, opts.runs, ratio)
    problems = [f"{ph.backend}/{ph.name}: {msg}" for ph in phases for msg in ph.problems]
    for msg in problems[:20]:
        print("PROBLEM", msg)
    print(json.dumps({f"{ph.backend}_{ph.name}_runs_per_s": round(ph.runs_per_s, 1) for ph in phases}
                     | {"postgresql_lifecycle_ratio_vs_raw_psycopg": None if ratio is None else round(ratio, 2),
                        "problems": len(problems)}))
    return 1 if problems else 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
