"""Measure 3: start_run on a database holding a long history vs on an empty one.

The big database is built once with executemany into bench/.cache/ and reused: 1,000,000 runs (quick mode:
200,000) with 2 steps each and 5 errors per run on average, outcomes mixed (success, partial, failure), all
finished. Rows are spread over the 30 days before the build and both trackers keep 365 days, so start_run's
retention cleanup finds nothing to delete — as on a healthy database — and the cached rows stay inside the
window; a cache older than 300 days is rebuilt. The schema is the tracker's own (its migrations, applied by
the store itself), with its indexes, and no ANALYZE, as a real database would have.

Each round times a batch of start_run calls on each database (the run is then ended, untimed, so that no
`running` row is left behind for a later start_run to reap); the ratio is big / empty, median of rounds.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from runtracker import RunTracker
from runtracker.storage import schema
from runtracker.storage.sqlite import SQLiteStore

RETENTION_DAYS = 365
SPREAD_DAYS = 30
MAX_AGE_DAYS = 300
STEPS_PER_RUN = 2
ERRORS_PER_RUN = 5
PIPELINES = ("nikki", "sportlink", "freescout", "laposta", "rondo-club")
OUTCOMES = ("success",) * 16 + ("partial",) * 3 + ("failure",)


def _iso(seconds: float) -> str:
    """The tracker's timestamp format (clock.iso), without building a datetime: 1.6M of these per 200k runs."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def history_path(runs: int) -> Path:
    from benchlib import cache_dir

    label = f"{runs // 1_000_000}m" if runs % 1_000_000 == 0 else f"{runs // 1000}k"
    return cache_dir() / f"history-{label}-v{schema.LATEST}.sqlite"


def ensure_history(runs: int, log: object = print) -> tuple[Path, float]:
    """The cached history database of `runs` runs, built if missing or too old; (path, build seconds)."""
    path = history_path(runs)
    if path.exists() and time.time() - path.stat().st_mtime < MAX_AGE_DAYS * 86400:
        return path, 0.0
    log(f"building {path.name}: {runs:,} runs, {runs * STEPS_PER_RUN:,} steps, "  # type: ignore[operator]
        f"{runs * ERRORS_PER_RUN:,} errors (once; cached in bench/.cache/)")
    start = time.perf_counter()
    for stale in path.parent.glob(path.name.rsplit("-v", 1)[0] + "-v*.sqlite*"):  # older schema versions
        stale.unlink(missing_ok=True)
    tmp = path.with_suffix(".building")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    store = SQLiteStore(str(tmp))  # the tracker's own schema, migrations and indexes
    store.upgrade_schema()
    store.close()
    _fill(tmp, runs)
    os.replace(tmp, path)
    return path, time.perf_counter() - start


def _fill(path: Path, runs: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    # Building a cache, not tracking: no journal, no fsync. The file is switched back to WAL at the end.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    rng = random.Random(4)
    end = time.time() - 3600
    first = end - SPREAD_DAYS * 86400
    step = (end - first) / runs
    # Per run: its start time and the timestamps of its steps and errors (computed once, used by three tables).
    plan = []
    for i in range(runs):
        at = first + i * step
        # 0..10 errors per run, 5 on average.
        plan.append(((at, *(_iso(at + offset) for offset in (0, 20, 30, 40, 45))), rng.choice(OUTCOMES),
                     (i * 7) % (2 * ERRORS_PER_RUN + 1)))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO runs (id, club_slug, pipeline, started_at, finished_at, duration_ms, outcome, total_created,"
        " total_updated, total_skipped, total_failed, summary_json, hostname, pid, process_started_at,"
        " heartbeat_at, exit_code) VALUES (?, 'rondo', ?, ?, ?, ?, ?, 80, 18, 26, ?, NULL, 'bench-host', ?, ?, ?, ?)",
        _runs(plan),
    )
    conn.executemany(
        "INSERT INTO run_steps (id, run_id, club_slug, step_name, started_at, finished_at, duration_ms, outcome,"
        " created_count, updated_count, skipped_count, failed_count) VALUES (?, ?, 'rondo', ?, ?, ?, 20000, ?,"
        " 40, 9, 13, ?)",
        _steps(plan),
    )
    conn.executemany(
        "INSERT INTO run_errors (run_id, run_step_id, club_slug, step_name, member_identifier, error_message,"
        " error_stack, created_at) VALUES (?, ?, 'rondo', ?, ?, ?, NULL, ?)",
        _errors(plan),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


Plan = list[tuple[tuple[float, str, str, str, str, str], str, int]]


def _runs(plan: Plan) -> Iterator[tuple[object, ...]]:
    for i, ((at, started, _, _, _, finished), outcome, errors) in enumerate(plan, 1):
        yield (i, PIPELINES[i % len(PIPELINES)], started, finished, 45000, outcome, errors, 10000 + i % 30000,
               at - 1, started, 1 if outcome == "failure" else 0)


def _steps(plan: Plan) -> Iterator[tuple[object, ...]]:
    # Two steps per run: the first succeeded, the second carries the run's outcome and its errors.
    for i, ((_, t0, t20, _, t40, _), outcome, errors) in enumerate(plan, 1):
        yield (2 * i - 1, i, "step-0", t0, t20, "success", 0)
        yield (2 * i, i, "step-1", t20, t40, outcome, errors)


def _errors(plan: Plan) -> Iterator[tuple[object, ...]]:
    for i, ((_, _, _, created, _, _), _outcome, errors) in enumerate(plan, 1):
        for e in range(errors):
            yield (i, 2 * i, "step-1", f"KNVB{(i * 7 + e) % 100000:05d}", "member not found in Sportlink", created)


def measure(big: Path, workdir: Path, rounds: int, per_round: int) -> dict[str, float]:
    """Alternate batches of start_run on the big database and on an empty one."""
    from benchlib import alternate, median, paired_ratios

    empty = workdir / "history-empty.sqlite"
    trackers = {
        "big": RunTracker("bench", db=str(big), retention_days=RETENTION_DAYS),
        "empty": RunTracker("bench", db=str(empty), retention_days=RETENTION_DAYS),
    }

    def batch(tracker: RunTracker) -> float:
        total = 0.0
        for _ in range(per_round):
            start = time.perf_counter()
            tracker.start_run()
            total += time.perf_counter() - start
            tracker.end_run("success")
        return total / per_round

    sides = {name: (lambda t=tracker: batch(t)) for name, tracker in trackers.items()}
    for side in sides.values():  # warm-up: open, migrate, page cache
        side()
    results = alternate(rounds, sides)
    for tracker in trackers.values():
        tracker.close()
    ratios = paired_ratios(results["big"], results["empty"])
    return {
        "ratio": median(ratios),
        "big_ms": median(results["big"]) * 1000,
        "empty_ms": median(results["empty"]) * 1000,
        "ratios": ratios,
    }
