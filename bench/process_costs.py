"""Measures 5–7, each in fresh subprocesses: import cost, time to record a crash, memory.

- import_ms: `python -c "import runtracker"` vs `python -c "pass"`, whole process, alternated; the median of
  the per-pair differences. import_ratio_vs_bare_python: the same difference over the bare start-up, per pair.
  Bytecode is cached (.pyc), as after an install; see `_env`.
- crash_record_ms: from an uncaught exception to its committed crash row. The app sets its own
  sys.excepthook (a probe) before it starts a run; runtracker's hook wraps it and calls it exactly once,
  *after* it has committed the crash (the chaining the crash table relies on). The probe reads
  time.perf_counter() — the same clock the app read just before `raise` — and then checks, on a connection
  of its own, that the crash row and the `failure` outcome are really committed. So the figure covers the
  unwinding to sys.excepthook, formatting the traceback, and the transaction; it excludes interpreter
  shutdown, which happens the same with or without the tracker. No polling from outside, no atexit.
- rss_overhead_mb: peak RSS (VmHWM; see RSS_APP for why not ru_maxrss) of a process that imports
  runtracker and runs 1,000 lifecycles vs one that only imports it; median of alternated pairs. A process
  running a single lifecycle is measured alongside, to tell set-up cost from growth per run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchlib import BENCH_DIR, alternate, median

HEAVY = ("click", "psutil", "psycopg", "asyncio", "sqlalchemy", "jinja2", "starlette", "fastapi", "flask")


def _env() -> dict[str, str]:
    # Children run as a pipeline would after `pip install`: with compiled bytecode cached. With
    # PYTHONDONTWRITEBYTECODE set (some shells and containers set it), every start would compile the package
    # from source, which measures the compiler, not the package.
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _python(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=check, timeout=120,
                          env=_env())


def _elapsed(code: str) -> float:
    import time

    start = time.perf_counter()
    _python("-c", code)
    return time.perf_counter() - start


def measure_import(rounds: int) -> dict[str, object]:
    _python("-c", "import runtracker")  # writes the .pyc files if they are missing or stale
    results = alternate(rounds, {"import": lambda: _elapsed("import runtracker"), "pass": lambda: _elapsed("pass")})
    diffs = [(a - b) * 1000 for a, b in zip(results["import"], results["pass"], strict=True)]
    # Machine-independent: the added cost in units of the bare interpreter's own start-up, pair by pair.
    ratios = [(a - b) / b for a, b in zip(results["import"], results["pass"], strict=True)]
    probe = f"import sys, runtracker; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    heavy = _python("-c", probe).stdout.split()
    return {"ms": median(diffs), "ratio": median(ratios), "pass_ms": median(results["pass"]) * 1000,
            "heavy": heavy}


CRASH_APP = '''
import json, sqlite3, sys, time

DB = sys.argv[1]
state = {}


def probe(exc_type, exc, tb):
    # runtracker's excepthook calls the hook it replaced once the crash is committed.
    elapsed_ms = (time.perf_counter() - state["raised"]) * 1000
    conn = sqlite3.connect(DB)
    crash_rows = conn.execute(
        "SELECT COUNT(*) FROM run_errors WHERE run_id = ? AND step_name = 'crash'", (state["run"],)).fetchone()[0]
    outcome = conn.execute("SELECT outcome FROM runs WHERE id = ?", (state["run"],)).fetchone()[0]
    conn.close()
    print(json.dumps({"ms": elapsed_ms, "crash_rows": crash_rows, "outcome": outcome}), flush=True)


sys.excepthook = probe

from runtracker import RunTracker

tracker = RunTracker("bench-crash", db=DB)
state["run"] = tracker.start_run()
step = tracker.start_step("sync")
tracker.record_error(step_name="sync", step_id=step, member_identifier="KNVB1004", error_message="not found")


def sync(depth):
    if depth:
        return sync(depth - 1)
    raise RuntimeError("Sportlink answered 503")


state["raised"] = time.perf_counter()
sync(10)
'''


def measure_crash(workdir: Path, runs: int) -> dict[str, object]:
    app = workdir / "crash_app.py"
    app.write_text(CRASH_APP)
    samples = []
    for i in range(runs):
        db = workdir / f"crash-{i}.sqlite"
        proc = _python(str(app), str(db), check=False)
        try:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise RuntimeError(f"crash app printed no probe result:\n{proc.stdout}\n{proc.stderr}") from None
        if proc.returncode != 1 or result["crash_rows"] != 1 or result["outcome"] != "failure":
            raise RuntimeError(f"crash not recorded as expected: exit {proc.returncode}, {result}\n{proc.stderr}")
        samples.append(result["ms"])
    return {"ms": median(samples), "samples": samples}


RSS_APP = '''
import resource, sys
sys.path.insert(0, sys.argv[3])
import runtracker

n = int(sys.argv[2])
if n:
    from lifecycle import tracker_lifecycle

    tracker = runtracker.RunTracker("bench-rss", db=sys.argv[1])
    for _ in range(n):
        tracker_lifecycle(tracker)
try:
    # VmHWM: this process image's own peak. ru_maxrss is not used on Linux because it carries over the
    # parent's RSS at fork across exec, and the harness parent is bigger than an importing child.
    with open("/proc/self/status") as f:
        print(next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")))
except (OSError, StopIteration):
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux, bytes on macOS
'''


def measure_rss(workdir: Path, rounds: int, lifecycles: int = 1000) -> dict[str, object]:
    app = workdir / "rss_app.py"
    app.write_text(RSS_APP)
    counter = iter(range(10**6))

    def peak(n: int) -> float:
        db = workdir / f"rss-{next(counter)}.sqlite"
        return int(_python(str(app), str(db), str(n), str(BENCH_DIR)).stdout.strip()) / 1024

    results = alternate(rounds, {"lifecycles": lambda: peak(lifecycles), "one": lambda: peak(1),
                                 "import": lambda: peak(0)})
    diffs = [a - b for a, b in zip(results["lifecycles"], results["import"], strict=True)]
    # One lifecycle already brings the connection, psutil and the heartbeat thread: what the other 999 add
    # on top is what would grow in a long-lived process.
    first = [a - b for a, b in zip(results["one"], results["import"], strict=True)]
    return {"mb": median(diffs), "first_mb": median(first), "import_mb": median(results["import"]),
            "lifecycles": lifecycles}
