"""Measure 1: one run lifecycle through the tracker vs the same writes in hand-written stdlib sqlite3.

One lifecycle = start_run, 5 × (start_step, 4 × record_error, end_step), end_run: 32 calls, 32 commits.

The raw side is the physical limit for the *same* workload, not a smaller one: the same connection settings
(WAL, synchronous=NORMAL, one connection kept open), one `BEGIN IMMEDIATE … COMMIT` per call as the store
does, and the same statements the store issues for each call — the retention DELETEs at start_run (with
nothing to delete they are index probes), INSERT … RETURNING id, the compare-and-set end_run that reads the
run's outcome and sums the step counts in a subquery. Timestamps and durations are computed per call on both
sides. What is left between the two is the tracker's own Python: argument checks and sanitising, the guard,
the registry of open runs, the hooks check. `statement_counts` traces both connections to show that the two
sides send SQLite the same number of statements.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runtracker import RunTracker
from runtracker.base import redact
from runtracker.core.state import STATE
from runtracker.storage import open_store

STEPS = 5
ERRORS_PER_STEP = 4
CALLS = 1 + STEPS * (2 + ERRORS_PER_STEP) + 1
RETENTION_DAYS = 3


def tracker_lifecycle(tracker: RunTracker) -> None:
    tracker.start_run()
    for s in range(STEPS):
        step_name = f"sync-{s}"
        step_id = tracker.start_step(step_name)
        for e in range(ERRORS_PER_STEP):
            tracker.record_error(step_name=step_name, step_id=step_id, member_identifier=f"KNVB{1000 + e}",
                                 error_message="member not found")
        tracker.end_step(step_id, "partial", created=40, updated=9, skipped=13, failed=ERRORS_PER_STEP)
    tracker.end_run("partial", {"contributions": 40})


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _now() -> str:
    return _iso(datetime.now(UTC))


_OLD = "SELECT id FROM runs WHERE started_at < ? AND outcome <> 'running'"
# The same guarantees as the store's: a step only into a run that has not ended (or that the reaper ended);
# the end reads the run under its lock, ends the steps still open, sums capped counts, says who ended it.
_INSERT_STEP = (
    "INSERT INTO run_steps (run_id, club_slug, step_name, started_at) SELECT ?, ?, ?, ?"
    " WHERE EXISTS (SELECT 1 FROM runs WHERE id = ? AND (outcome = 'running' OR ended_by = 'reaper'))"
    " RETURNING id"
)
_END_STEP = (
    "UPDATE run_steps SET finished_at = ?, duration_ms = ?, outcome = ?, created_count = ?, updated_count = ?,"
    " skipped_count = ?, failed_count = ?, detail_json = ? WHERE id = ? AND (finished_at IS NULL OR EXISTS"
    " (SELECT 1 FROM runs WHERE runs.id = run_steps.run_id AND runs.ended_by = 'reaper'))"
)
_CAPPED = "SUM(CASE WHEN {c} > 2147483647 THEN 2147483647 ELSE {c} END)"
_FINISH_RUN = (
    "UPDATE runs SET finished_at = ?, duration_ms = ?, outcome = ?, summary_json = ?, exit_code = ?,"
    " ended_by = ?, reaped_at = COALESCE(?, reaped_at), reap_reason = COALESCE(?, reap_reason),"
    " output_tail = COALESCE(?, output_tail),"
    " total_created = t.c, total_updated = t.u, total_skipped = t.s, total_failed = t.f"
    f" FROM (SELECT COALESCE({_CAPPED.format(c='created_count')}, 0) AS c,"
    f" COALESCE({_CAPPED.format(c='updated_count')}, 0) AS u,"
    f" COALESCE({_CAPPED.format(c='skipped_count')}, 0) AS s,"
    f" COALESCE({_CAPPED.format(c='failed_count')}, 0) AS f"
    " FROM run_steps WHERE run_id = ?) AS t"
    " WHERE runs.id = ?"
)


class RawLifecycle:
    """The same lifecycle written directly against sqlite3, as a careful hand-written tracker would."""

    def __init__(self, path: Path) -> None:
        create_schema(path)
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.hostname = os.uname().nodename
        self.pid = os.getpid()
        self.process_started_at = time.time()

    def __call__(self) -> None:
        cur = self.conn.cursor()
        # start_run: retention cleanup and the new run, one transaction.
        started, started_at = time.monotonic(), _now()
        cutoff = _iso(datetime.now(UTC) - timedelta(days=RETENTION_DAYS))
        cur.execute("BEGIN IMMEDIATE")
        cur.execute(f"DELETE FROM run_errors WHERE run_id IN ({_OLD})", (cutoff,))
        cur.execute(f"DELETE FROM run_steps WHERE run_id IN ({_OLD})", (cutoff,))
        cur.execute("DELETE FROM runs WHERE started_at < ? AND outcome <> 'running'", (cutoff,))
        cur.execute(
            "INSERT INTO runs (club_slug, pipeline, started_at, outcome, hostname, pid, process_started_at,"
            " heartbeat_at, process_key, lock_key) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?) RETURNING id",
            ("rondo", "bench", started_at, self.hostname, self.pid, self.process_started_at, started_at,
             "bench-key", None),
        )
        run_id = cur.fetchone()[0]
        cur.execute("COMMIT")
        for s in range(STEPS):
            step_name = f"sync-{s}"
            step_started = time.monotonic()
            cur.execute("BEGIN IMMEDIATE")
            cur.execute(_INSERT_STEP, (run_id, "rondo", step_name, _now(), run_id))
            step_id = cur.fetchone()[0]
            cur.execute("COMMIT")
            for e in range(ERRORS_PER_STEP):
                cur.execute("BEGIN IMMEDIATE")
                cur.execute(
                    "INSERT INTO run_errors (run_id, run_step_id, club_slug, step_name, member_identifier,"
                    " error_message, error_stack, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, step_id, "rondo", step_name, f"KNVB{1000 + e}", "member not found", None, _now()),
                )
                cur.execute("COMMIT")
            cur.execute("BEGIN IMMEDIATE")
            cur.execute(_END_STEP, (_now(), int((time.monotonic() - step_started) * 1000), "partial", 40, 9, 13,
                                    ERRORS_PER_STEP, None, step_id))
            cur.execute("COMMIT")
        # end_run: compare-and-set on a still running run, its open steps ended, totals summed from its steps.
        cur.execute("BEGIN IMMEDIATE")
        cur.execute("SELECT outcome, ended_by FROM runs WHERE id = ?", (run_id,))
        if cur.fetchone()[0] == "running":
            cur.execute("SELECT id, step_name, started_at FROM run_steps WHERE run_id = ? AND finished_at IS NULL"
                        " ORDER BY id", (run_id,))
            assert cur.fetchall() == []  # every step ended: nothing to end
            cur.execute(_FINISH_RUN, (_now(), int((time.monotonic() - started) * 1000), "partial",
                                      json.dumps({"contributions": 40}), None, "owner", None, None, None, run_id,
                                      run_id))
        cur.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def create_schema(path: Path) -> None:
    """The tracker's own schema (every migration, its indexes), made by the store and closed: the raw side then
    works on it with a plain connection of its own."""
    open_store(str(path)).close()


def statement_counts(tracker: RunTracker, db: str, raw: RawLifecycle) -> tuple[int, int]:
    """SQL statements (PRAGMAs aside) one lifecycle sends to SQLite, tracker and raw."""
    counts = []
    for conn, lifecycle in ((STATE.stores.get(db).connection,  # type: ignore[attr-defined]
                             lambda: tracker_lifecycle(tracker)), (raw.conn, raw)):
        seen: list[str] = []
        conn.set_trace_callback(seen.append)
        try:
            lifecycle()
        finally:
            conn.set_trace_callback(None)
        counts.append(sum(1 for s in seen if not s.lstrip().upper().startswith("PRAGMA")))
    return counts[0], counts[1]


def measure(workdir: Path, rounds: int, per_round: int) -> dict[str, object]:
    """Alternate batches of `per_round` lifecycles, tracker and raw, each on its own file in `workdir`."""
    from benchlib import alternate, median, paired_ratios, timed

    db = str(workdir / "lifecycle-tracker.sqlite")
    tracker = RunTracker("bench", db=db, retention_days=RETENTION_DAYS)
    raw = RawLifecycle(workdir / "lifecycle-raw.sqlite")

    def batch(fn: Callable[[], None]) -> Callable[[], float]:
        return lambda: timed(lambda: [fn() for _ in range(per_round)]) / per_round

    def unredacted() -> None:
        redact.configure(enabled=False)
        try:
            tracker_lifecycle(tracker)
        finally:
            redact.configure(enabled=True)

    # The tracker as shipped (redaction on), the same with redaction off, and the raw writes.
    sides = {"tracker": batch(lambda: tracker_lifecycle(tracker)), "unredacted": batch(unredacted), "raw": batch(raw)}
    for side in sides.values():  # warm-up: first connection use, hooks, page cache
        side()
    statements = statement_counts(tracker, db, raw)
    results = alternate(rounds, sides)
    raw.close()
    tracker.close()
    return {
        "ratio": median(paired_ratios(results["tracker"], results["raw"])),
        "unredacted_ratio": median(paired_ratios(results["unredacted"], results["raw"])),
        "tracker_ms": median(results["tracker"]) * 1000,
        "raw_ms": median(results["raw"]) * 1000,
        "ratios": paired_ratios(results["tracker"], results["raw"]),
        "statements": statements,
    }
