"""Histories for the dashboard's tests: through the public API where the behaviour is the tracker's (crashes,
errors, hostile text), or as rows written directly where a test needs exact times and durations."""

from __future__ import annotations

from typing import Any

from runtracker import RunTracker
from runtracker.base.clock import iso
from runtracker.storage import Store

BASE_MS = 1_780_000_000_000  # 2026-05-28T20:26:40Z


def at(minutes: float) -> str:
    return iso(BASE_MS + int(minutes * 60_000))


def add_run(store: Store, pipeline: str, minute: float, *, duration_s: float = 60, outcome: str = "success",
            errors: list[tuple[str, str | None, str]] = (), **columns: Any) -> int:
    """A finished run started `minute` minutes after BASE_MS, with errors (step, member, message) a second in."""
    finished = None if outcome == "running" else at(minute + duration_s / 60)
    values = {"pipeline": pipeline, "started_at": at(minute), "finished_at": finished,
              "duration_ms": None if outcome == "running" else int(duration_s * 1000), "outcome": outcome,
              "total_created": 3, "total_updated": 2, "total_skipped": 1, "total_failed": len(errors), **columns}
    names = ", ".join(values)
    with store.transaction() as cur:
        run_id = store.insert_returning_id(cur, f"INSERT INTO runs ({names}) VALUES ({', '.join('?' * len(values))})",
                                           list(values.values()))
        for i, (step, member, message) in enumerate(errors):
            cur.execute(store.sql("INSERT INTO run_errors (run_id, step_name, member_identifier, error_message,"
                                  " created_at) VALUES (?, ?, ?, ?, ?)"),
                        (run_id, step, member, message, at(minute + (1 + i) / 600)))
    return run_id


def tracked_run(db: str, pipeline: str, *, errors: list[dict[str, Any]] = (), outcome: str = "partial",
                step: str = "sync") -> int:
    """A run recorded by the tracker itself."""
    tracker = RunTracker(pipeline, db=db, retention_days=0)
    run_id = tracker.start_run()
    assert run_id is not None
    step_id = tracker.start_step(step)
    for error in errors:
        tracker.record_error(step_name=step, step_id=step_id, **error)
    tracker.end_step(step_id, outcome=outcome, created=4, failed=len(errors))
    tracker.end_run(outcome)
    tracker.close()
    return run_id
