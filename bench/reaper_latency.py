"""How long a SIGKILLed run stays `running`: detection latency of `runtracker monitor`, same host and cross-host.

    python bench/reaper_latency.py                 # 10 runs per mode, the monitor's default interval (5 s)
    python bench/reaper_latency.py --quick         # 5 runs per mode, monitor interval 1 s
    python bench/reaper_latency.py --db postgresql://postgres@127.0.0.1:5432/test   # its runs deleted after

Pipelines run in subprocesses, each with an open run inside a step; one `runtracker monitor` watches the
database. The pipelines are SIGKILLed one by one at random moments, and the latency of each is the reaper's
`reaped_at` minus the moment of the kill (one machine, one clock). Same host: the pid is checked, so the
latency is the wait for the monitor's next pass (at most its interval). Cross-host is simulated: the pipelines
call themselves another host ($RUNTRACKER_HOSTNAME), so only their heartbeat tells, and a short heartbeat and
timeout are used so that the benchmark takes seconds, not minutes; the output states them and what the defaults
give. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from runtracker.storage import Runs, open_store  # noqa: E402

PIPELINE = """
import time
from runtracker import RunTracker
tracker = RunTracker("bench-reaper")
run_id = tracker.start_run()
tracker.start_step("sync")
print(run_id, flush=True)
time.sleep(3600)
"""


def _env(db: str, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["RUNTRACKER_DB"] = db
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _start_pipelines(n: int, db: str, env: dict[str, str], workdir: Path) -> list[tuple[subprocess.Popen[str], int]]:
    script = workdir / "pipeline.py"
    script.write_text(PIPELINE)
    procs = [subprocess.Popen([sys.executable, str(script)], env=_env(db, env), stdout=subprocess.PIPE, text=True)
             for _ in range(n)]
    started = []
    for proc in procs:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.strip().isdigit():
            raise SystemExit(f"a pipeline did not start its run: {line!r}")
        started.append((proc, int(line)))
    return started


def _measure(mode: str, n: int, db: str, env: dict[str, str], spread_s: float, workdir: Path,
             give_up_s: float) -> list[float]:
    """Start n pipelines, kill them one by one at random moments over spread_s, return each detection latency."""
    pipelines = _start_pipelines(n, db, env, workdir)
    time.sleep(max(float(env.get("RUNTRACKER_HEARTBEAT_S", "0")), 0.2))  # let the heartbeats start
    killed_at: dict[int, float] = {}
    for proc, run_id in pipelines:
        time.sleep(random.uniform(0, spread_s / n))
        proc.send_signal(signal.SIGKILL)
        killed_at[run_id] = time.time()
        proc.wait()
    store = open_store(db)
    try:
        deadline = time.monotonic() + give_up_s
        while True:
            listed = Runs(store).list_runs(pipeline="bench-reaper", limit=10_000)
            rows = {r["id"]: r for r in listed if r["id"] in killed_at}
            if all(rows[i]["reaped_at"] for i in killed_at):
                break
            if time.monotonic() > deadline:
                missing = [i for i in killed_at if not rows[i]["reaped_at"]]
                raise SystemExit(f"{mode}: runs {missing} were not reaped within {give_up_s:g} s")
            time.sleep(0.05)
    finally:
        store.close()
    return [datetime.fromisoformat(rows[i]["reaped_at"].replace("Z", "+00:00")).timestamp() - killed_at[i]
            for i in killed_at]


def _forget_bench_runs(db: str) -> None:
    """On a database given with --db, leave no trace: delete this benchmark's runs."""
    store = open_store(db)
    try:
        with store.transaction() as cur:
            ids = "SELECT id FROM runs WHERE pipeline = 'bench-reaper'"
            for table in ("run_errors", "run_steps"):
                cur.execute(f"DELETE FROM {table} WHERE run_id IN ({ids})")
            cur.execute("DELETE FROM runs WHERE pipeline = 'bench-reaper'")
    finally:
        store.close()


def _summary(latencies: list[float]) -> dict[str, float | int]:
    return {"n": len(latencies), "median_s": round(statistics.median(latencies), 3),
            "max_s": round(max(latencies), 3), "min_s": round(min(latencies), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file in a temporary directory)")
    parser.add_argument("--runs", type=int, default=10, help="SIGKILLed runs per mode (default 10)")
    parser.add_argument("--interval", type=float, default=5.0, help="the monitor's interval (default 5 s, its default)")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="cross-host: the pipelines' heartbeat (1 s)")
    parser.add_argument("--timeout", type=float, default=5.0, help="cross-host: the monitor's heartbeat timeout (5 s)")
    parser.add_argument("--quick", action="store_true", help="5 runs per mode, monitor interval 1 s")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.interval = 5, 1.0

    with tempfile.TemporaryDirectory(prefix="runtracker-reaper-bench-") as tmp:
        workdir = Path(tmp)
        db = args.db or f"sqlite:///{workdir / 'dashboard.sqlite'}"
        crash_dir = {"RUNTRACKER_CRASH_DIR": str(workdir / "crash")}
        open_store(db).close()  # create and migrate before anyone races to
        monitor = subprocess.Popen(
            [sys.executable, "-m", "runtracker", "monitor", "--interval", str(args.interval),
             "--heartbeat-timeout", str(args.timeout)],
            env=_env(db, crash_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            if monitor.stderr is None or not monitor.stderr.readline().startswith("monitoring"):
                raise SystemExit("runtracker monitor did not start")
            spread = 2 * args.interval
            same = _measure("same host", args.runs, db, crash_dir, spread, workdir, give_up_s=args.interval * 4 + 30)
            cross_env = {**crash_dir, "RUNTRACKER_HOSTNAME": "bench-remote-host",
                         "RUNTRACKER_HEARTBEAT_S": str(args.heartbeat)}
            cross = _measure("cross-host", args.runs, db, cross_env, spread, workdir,
                             give_up_s=args.timeout + args.interval * 4 + 30)
        finally:
            monitor.send_signal(signal.SIGTERM)
            monitor.wait(timeout=30)
        if args.db:
            _forget_bench_runs(db)

    backend = "postgresql" if db.startswith("postgres") else "sqlite"
    result = {
        "bench": "reaper_latency", "backend": backend, "monitor_interval_s": args.interval,
        "same_host": _summary(same),
        "cross_host": {**_summary(cross), "heartbeat_s": args.heartbeat, "heartbeat_timeout_s": args.timeout,
                       "simulated": True},
    }
    print(f"reaper detection latency under `runtracker monitor --interval {args.interval:g}` ({backend}), "
          f"{args.runs} SIGKILLed runs per mode")
    print(f"  same host   median {result['same_host']['median_s']:.2f} s   max {result['same_host']['max_s']:.2f} s"
          f"   (pid checked: bounded by the monitor interval, {args.interval:g} s)")
    print(f"  cross-host  median {result['cross_host']['median_s']:.2f} s   max {result['cross_host']['max_s']:.2f} s"
          f"   (simulated; SHORT settings: heartbeat {args.heartbeat:g} s, timeout {args.timeout:g} s)")
    print("  cross-host with the defaults (heartbeat 10 s, timeout 60 s, interval 5 s) is found 50-65 s after "
          "the death: timeout - heartbeat <= latency <= timeout + interval")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
