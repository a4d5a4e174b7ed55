"""Measure 4: record_errors with 10,000 error dicts in one call, as a rate; hand-written inserts beside it.

The raw side inserts the same 10,000 rows in one transaction on its own connection (same PRAGMAs) with the
statements the store uses — multi-row INSERTs of Store.ERRORS_PER_INSERT rows — so the ratio says how much of
the call is the tracker's per-row work (reading the dict's keys, sanitising the texts) rather than SQLite's.
A plain executemany of the same rows, what a hand-written tracker would most likely do, runs alongside too.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from runtracker import RunTracker
from runtracker.storage.base import Store

ERRORS = 10_000
_INSERT = ("INSERT INTO run_errors (run_id, run_step_id, club_slug, step_name, member_identifier, error_message,"
           " error_stack, created_at) VALUES ")
_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?)"


def _errors() -> list[dict[str, object]]:
    return [{"member_identifier": f"KNVB{100000 + i}", "message": f"member {i} not found in Sportlink"}
            for i in range(ERRORS)]


def measure(workdir: Path, rounds: int) -> dict[str, object]:
    from benchlib import alternate, median, paired_ratios
    from lifecycle import create_schema

    tracker = RunTracker("bench", db=str(workdir / "bulk-tracker.sqlite"))
    tracker.start_run()
    step_id = tracker.start_step("sync")
    raw_path = workdir / "bulk-raw.sqlite"
    create_schema(raw_path)
    conn = sqlite3.connect(raw_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("INSERT INTO runs (pipeline, started_at, outcome)"
                 " VALUES ('bench', '2026-01-01T00:00:00.000Z', 'running')")
    conn.execute("INSERT INTO run_steps (run_id, step_name, started_at) VALUES (1, 'sync', '2026-01-01')")

    def tracked() -> float:
        errors = _errors()
        start = time.perf_counter()
        tracker.record_errors("sync", step_id, errors)
        return time.perf_counter() - start

    def raw(executemany: bool) -> float:
        errors = _errors()
        start = time.perf_counter()
        at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        rows = [(1, 1, "rondo", "sync", e["member_identifier"], e["message"], None, at) for e in errors]
        conn.execute("BEGIN IMMEDIATE")
        if executemany:
            conn.executemany(_INSERT + _VALUES, rows)
        else:
            for i in range(0, len(rows), Store.ERRORS_PER_INSERT):
                chunk = rows[i : i + Store.ERRORS_PER_INSERT]
                conn.execute(_INSERT + ", ".join([_VALUES] * len(chunk)), [v for row in chunk for v in row])
        conn.execute("COMMIT")
        return time.perf_counter() - start

    sides = {"tracker": tracked, "raw": lambda: raw(False), "executemany": lambda: raw(True)}
    for side in sides.values():
        side()
    results = alternate(rounds, sides)
    tracker.end_run("partial")
    tracker.close()
    conn.close()
    return {
        "per_s": ERRORS / median(results["tracker"]),
        "raw_per_s": ERRORS / median(results["raw"]),
        "executemany_per_s": ERRORS / median(results["executemany"]),
        "best_per_s": ERRORS / min(results["tracker"]),
        "ratio": median(paired_ratios(results["tracker"], results["raw"])),
    }
