"""Measure 4: record_errors with 10,000 error dicts in one call, as a rate; hand-written inserts beside it.

The raw side inserts the same 10,000 rows in one transaction on its own connection (same PRAGMAs) with the
statements the store uses — multi-row INSERTs of Runs.ERRORS_PER_INSERT rows — so the ratio says how much of
the call is the tracker's per-row work (reading the dict's keys, sanitising the texts) rather than SQLite's.
A plain executemany of the same rows, what a hand-written tracker would most likely do, runs alongside too.

`measure_redaction`: the same call with 10,000 realistic messages (`realistic_errors`: HTTP failures with URLs,
validation errors, database errors, one in eight with a secret in it), redaction on and off, alternating on one
tracker, in CPU time (at least 15 rounds): the ratio is what redaction adds to record_errors.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from runtracker import RunTracker
from runtracker.storage.runs import Runs

ERRORS = 10_000
_INSERT = ("INSERT INTO run_errors (run_id, run_step_id, club_slug, step_name, member_identifier, error_message,"
           " error_stack, created_at) VALUES ")
_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?)"


def _errors() -> list[dict[str, object]]:
    return [{"member_identifier": f"KNVB{100000 + i}", "message": f"member {i} not found in Sportlink"}
            for i in range(ERRORS)]


# What pipelines record: most messages hold no secret, some hold a URL, a query string or a header with one.
_REALISTIC = (
    "member KNVB{n} not found in Sportlink",
    "HTTP 502 Bad Gateway from https://api.sportlink.nl/members/KNVB{n}: upstream timeout",
    "validation failed for KNVB{n}: email 'member{i}@example.org' is not a valid address",
    "contribution 2026-{m:02d} of KNVB{n} already exists (id={i})",
    "timeout after 30 s while updating KNVB{n}",
    'duplicate key value violates unique constraint "members_pkey" (member_id={i})',
    "GET https://api.example.org/v1/members/{i}?api_key=k{i:08x}&page=2 failed: 401 Unauthorized",
    "KNVB{n}: field 'birthdate' must be a date, got '31-02-2001'",
)


def realistic_errors() -> list[dict[str, object]]:
    return [{"member_identifier": f"KNVB{100000 + i}",
             "message": _REALISTIC[i % len(_REALISTIC)].format(n=100000 + i, i=i, m=i % 12 + 1)}
            for i in range(ERRORS)]


def measure_redaction(workdir: Path, rounds: int) -> dict[str, object]:
    """record_errors of realistic messages with redaction on, and off (`redact.configure(enabled=False)`)."""
    from benchlib import alternate, median, paired_ratios

    from runtracker.base import redact

    tracker = RunTracker("bench", db=str(workdir / "bulk-redaction.sqlite"))
    tracker.start_run()
    step_id = tracker.start_step("sync")

    def side(enabled: bool) -> float:
        errors = realistic_errors()
        redact.configure(enabled=enabled)
        try:
            # CPU time: both sides do the same I/O, and the difference is Python work; on a shared machine the
            # wall clock adds whatever else ran meanwhile.
            start = time.process_time()
            tracker.record_errors("sync", step_id, errors)
            return time.process_time() - start
        finally:
            redact.configure(enabled=True)

    sides = {"on": lambda: side(True), "off": lambda: side(False)}
    for run in sides.values():
        run()
    results = alternate(max(rounds, 15), sides)
    tracker.end_run("partial")
    return {
        "ratio": median(paired_ratios(results["on"], results["off"])),
        "on_per_s": ERRORS / median(results["on"]),
        "off_per_s": ERRORS / median(results["off"]),
    }


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
            for i in range(0, len(rows), Runs.ERRORS_PER_INSERT):
                chunk = rows[i : i + Runs.ERRORS_PER_INSERT]
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
