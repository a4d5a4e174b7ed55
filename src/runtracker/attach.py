"""A Python pipeline started by `runtracker exec` joins the wrapper's run instead of starting its own.

The wrapper puts RUNTRACKER_RUN_ID (and RUNTRACKER_DB) into the command's environment. A `RunTracker` for the
same pipeline on the same database then attaches at `start_run`: its steps and errors go into the wrapper's
run. The wrapper owns the run's end — it alone knows the exit status, the signal, the timeout and the output —
so nothing the child does ends the run:

- the child's `end_run(outcome, stats)` ends its open steps and records its view in the run's summary_json,
  under "child": `{"outcome": ..., "summary": stats}`. A child reporting `partial` or `failure` makes a run
  whose command exits 0 `partial` / `failure` (the worse of the two wins; an outcome never gets better);
- a crash of the child (uncaught exception, signal) adds its crash row with the stack and ends its steps
  `failure`; the wrapper then records the exit status as well;
- a child that exits without end_run leaves the outcome to its exit status: its open steps end `failure`,
  and no crash row is added (the wrapper records the exit code itself).

The tracker, the context managers and the crash hooks run unchanged: the attached run's store is an
`AttachedStore`, which passes every call on to the real store except the two that would end the run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from . import process
from .config import DB_ENV, resolve_db
from .outcomes import FAILURE, PARTIAL, SUCCESS
from .storage import ErrorRow, RunEnd, StepEnd, Store

log = logging.getLogger("runtracker")

RUN_ID_ENV = "RUNTRACKER_RUN_ID"
_RANK = {SUCCESS: 0, PARTIAL: 1, FAILURE: 2}


def requested() -> bool:
    """Whether this process was started by `runtracker exec` (cheap: one environment lookup)."""
    return bool(os.environ.get(RUN_ID_ENV))


def attach(store: Store, pipeline: str, club_slug: str | None, db: object) -> process.OpenRun | None:
    """The wrapper's run as this process's open run, or None to start a run of its own.

    Attaches only to a run that exists on the same database, is still `running` and belongs to the same
    pipeline: a child tracking another pipeline (or another database) starts its own run as usual.
    """
    try:
        run_id = int(os.environ.get(RUN_ID_ENV, ""))
    except ValueError:
        log.warning("runtracker: %s=%r is not a run id; starting a run of its own", RUN_ID_ENV,
                    os.environ.get(RUN_ID_ENV))
        return None
    if db is not None and os.environ.get(DB_ENV) and str(resolve_db(db)) != str(resolve_db(None)):
        return None
    row = store.get_run(run_id)
    if row is None or row["outcome"] != "running" or row["pipeline"] != pipeline:
        return None
    run = process.OpenRun(AttachedStore(store), run_id, pipeline, club_slug, time.monotonic())  # type: ignore[arg-type]
    process.register(run)
    return run


class AttachedStore:
    """The real store, except that ending the run records the child's view instead (see the module docstring).

    Everything else (steps, errors, heartbeats, reads) goes to the real store unchanged, including any
    backend-specific method, which is why this delegates rather than subclasses.
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def end_run(self, end: RunEnd, open_steps: Sequence[StepEnd] = (), errors: Sequence[ErrorRow] = ()) -> bool:
        """The child's end_run, or its `with` block ending in an exception."""
        return self.inner.record_child_view(end.run_id, open_steps, errors, _merge_view(end))

    def end_reaped_run(self, end: RunEnd, open_steps: Sequence[StepEnd] = (),
                       errors: Sequence[ErrorRow] = ()) -> bool:
        return False  # the wrapper's run is the wrapper's to settle with the reaper

    def end_runs_crashed(self, ends: Sequence[tuple[RunEnd, Sequence[StepEnd], Sequence[ErrorRow]]]) -> list[int]:
        """The child's crash hooks: an uncaught exception, a signal, or an exit without end_run."""
        done = []
        for end, steps, errors in ends:
            if _summary(end.summary_json).get("kind") == "exit":
                # Exiting without end_run is no crash here: the wrapper records the exit status itself.
                if self.inner.record_child_view(end.run_id, steps, (), lambda current: current, crash=True):
                    done.append(end.run_id)
            elif self.inner.record_child_view(end.run_id, steps, errors, _merge_view(end), crash=True):
                done.append(end.run_id)
        return done


def child_view(summary_json: str | None) -> dict[str, Any] | None:
    """What attached children reported, from a run's summary_json (the wrapper reads it before ending the run)."""
    view = _summary(summary_json).get("child")
    return view if isinstance(view, dict) else None


def worse(a: str, b: str) -> str:
    return a if _RANK.get(a, 2) >= _RANK.get(b, 2) else b


def _merge_view(end: RunEnd) -> Any:
    def merge(current: str | None) -> str:
        previous = child_view(current) or {}
        outcome = end.outcome
        if previous.get("outcome") in _RANK:  # several attached trackers (or children): the worst outcome stays
            outcome = worse(previous["outcome"], outcome)
        view: dict[str, Any] = {"outcome": outcome}
        summary = _summary(end.summary_json) if end.summary_json else previous.get("summary")
        if summary:
            view["summary"] = summary
        return json.dumps({"child": view}, ensure_ascii=False)

    return merge


def _summary(summary_json: str | None) -> dict[str, Any]:
    if not summary_json:
        return {}
    try:
        value = json.loads(summary_json)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {"value": value}
