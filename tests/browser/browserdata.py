"""Histories for the browser tests and the README screenshots (screenshots.py).

Through the public API where the behaviour is the tracker's: `tracked_run` (a finished run with a step and its
errors), `open_run` (a run left `running` by this process), `crashed_run` (a real process that dies of an
uncaught exception with tracking on). As rows written directly where a history needs runs hours or days apart
(`add_run`), which the tracker, recording the present moment, cannot make.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from helpers import Db, app_env
from runtracker import RunTracker
from runtracker.base.clock import iso
from runtracker.storage import Store

# (step, member or None, message)
ErrorSpec = tuple[str, "str | None", str]


def tracked_run(db: str, pipeline: str, *, step: str = "sync", errors: Sequence[ErrorSpec] = (),
                outcome: str | None = None, created: int = 4, updated: int = 2, skipped: int = 1) -> int:
    """A run recorded by the tracker: one step with `errors` (each with a short stack), ended `outcome`
    (default: partial with errors, success without)."""
    outcome = outcome or ("partial" if errors else "success")
    tracker = RunTracker(pipeline, db=db, retention_days=0)
    run_id = tracker.start_run()
    assert run_id is not None, "the tracker could not open a run"
    step_id = tracker.start_step(step)
    steps: dict[str, int | None] = {step: step_id}
    for step_name, member, message in errors:
        if step_name not in steps:
            steps[step_name] = tracker.start_step(step_name)
        tracker.record_error(step_name=step_name, step_id=steps[step_name], member_identifier=member,
                             error_message=message,
                             error_stack=f"Traceback (most recent call last):\n  File \"sync.py\", line 42, in "
                                         f"sync_member\n{message}")
    for step_name, sid in steps.items():
        failed = sum(1 for e in errors if e[0] == step_name)
        tracker.end_step(sid, outcome="partial" if failed else "success", created=created, updated=updated,
                         skipped=skipped, failed=failed)
    tracker.end_run(outcome)
    tracker.close()
    return run_id


def open_run(db: str, pipeline: str, step: str = "sync") -> RunTracker:
    """A run of `pipeline` left `running` by this process (with a step in progress); end it with
    `tracker.end_run(...)`."""
    tracker = RunTracker(pipeline, db=db, retention_days=0)
    assert tracker.start_run() is not None, "the tracker could not open a run"
    tracker.start_step(step)
    return tracker


CRASHING_APP = """
import logging
import time
from runtracker import RunTracker

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
log = logging.getLogger("sync")
tracker = RunTracker({pipeline!r})
tracker.start_run()
download = tracker.start_step("download")
time.sleep({work_s!r})
log.info("downloaded 120 members")
tracker.end_step(download, "success", created=120)
tracker.start_step({step!r})


def parse_member(member):
    raise ValueError({message!r})


def sync_members(members):
    time.sleep({work_s!r})
    for member in members:
        log.info("syncing member %s", member)
        parse_member(member)


sync_members([{member!r}])
"""


def crashed_run(workdir: Path, db: str, pipeline: str, *, step: str = "sync-members",
                message: str = "member KNVB0012345: no birth date", member: str = "KNVB0012345",
                script: str = "app.py", work_s: float = 0.0) -> int:
    """A real process (`workdir/script`) with tracking on that downloads, then dies of an uncaught
    ValueError(message) in `step` (each step taking `work_s`), logging at INFO on the way: the run is a `failure`
    with a crash row holding the traceback and the last log lines. Returns the run's id."""
    workdir.mkdir(parents=True, exist_ok=True)
    app = workdir / script
    app.write_text(CRASHING_APP.format(pipeline=pipeline, step=step, message=message, member=member, work_s=work_s))
    result = subprocess.run([sys.executable, str(app)], env=app_env(db), text=True, capture_output=True,
                            timeout=60, cwd=workdir)
    assert result.returncode == 1 and "ValueError" in result.stderr, (result.returncode, result.stderr)
    run = next(r for r in reversed(Db(db).runs()) if r["pipeline"] == pipeline)
    assert run["outcome"] == "failure", run
    return int(run["id"])


def add_run(store: Store, pipeline: str, started_ms: int, *, duration_s: float = 60, outcome: str = "success",
            errors: Sequence[ErrorSpec] = (), steps: Sequence[tuple[str, str, float]] = (),
            created: int = 3, updated: int = 2, skipped: int = 1, **columns: Any) -> int:
    """A run written as rows: started at `started_ms`, its steps (name, outcome, share of the run's time, one
    after the other) and its errors (a second apart, from a second in). `columns` sets any other runs column."""
    finished_ms = started_ms + int(duration_s * 1000)
    running = outcome == "running"
    values = {"pipeline": pipeline, "started_at": iso(started_ms), "finished_at": None if running else iso(finished_ms),
              "duration_ms": None if running else int(duration_s * 1000), "outcome": outcome,
              "total_created": created, "total_updated": updated, "total_skipped": skipped,
              "total_failed": len(errors), **columns}
    names = ", ".join(values)
    with store.transaction() as cur:
        run_id = store.insert_returning_id(
            cur, f"INSERT INTO runs ({names}) VALUES ({', '.join('?' * len(values))})", list(values.values()))
        at = started_ms
        step_ids: dict[str, int] = {}
        for name, step_outcome, share in steps:
            took = int(duration_s * 1000 * share)
            step_ids[name] = store.insert_returning_id(
                cur, "INSERT INTO run_steps (run_id, step_name, started_at, finished_at, duration_ms, outcome,"
                     " created_count, updated_count, skipped_count, failed_count)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, name, iso(at), iso(at + took), took, step_outcome, created, updated, skipped,
                 sum(1 for e in errors if e[0] == name)])
            at += took
        for i, (step, member, message) in enumerate(errors):
            cur.execute(store.sql("INSERT INTO run_errors (run_id, run_step_id, step_name, member_identifier,"
                                  " error_message, created_at) VALUES (?, ?, ?, ?, ?, ?)"),
                        (run_id, step_ids.get(step), step, member, message, iso(started_ms + 1000 * (1 + i))))
    return run_id
