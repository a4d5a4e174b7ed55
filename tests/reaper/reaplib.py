"""Helpers for the reaper's tests (fixtures are in conftest.py; waiting and dead pids are in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

from runtracker.base.clock import now_iso
from runtracker.core import liveness
from runtracker.storage import Runs, Store


def insert_running(store: Store, *, hostname: str | None = None, pid: int | None = None,
                   process_key: str | None = None, process_started_at: float | None = None,
                   started_at: str | None = None, heartbeat_at: str | None = None,
                   pipeline: str = "nikki") -> int:
    """A `running` run row as an owner would have written it, with the ownership facts given."""
    run_id = Runs(store).insert_run(pipeline=pipeline, club_slug="rondo",
                                    started_at=started_at or heartbeat_at or now_iso(),
                                    hostname=hostname or liveness.hostname(), pid=pid,
                                    process_started_at=process_started_at, retention_cutoff=None,
                                    process_key=process_key)
    if heartbeat_at is not None:
        with store.transaction() as cur:
            cur.execute(store.sql("UPDATE runs SET heartbeat_at = ? WHERE id = ?"), (heartbeat_at, run_id))
    return run_id


def crash_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("runtracker-crash-*")) if directory.exists() else []

