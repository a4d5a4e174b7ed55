"""A Python pipeline started by `runtracker exec` joins the wrapper's run instead of starting its own.

The wrapper puts RUNTRACKER_RUN_ID (and RUNTRACKER_DB) into the command's environment. A `RunTracker` for the
same pipeline on the same database then attaches at `start_run` (`lifecycle.open_run(attach_to=...)`): its
steps and errors go into the wrapper's run. The wrapper owns the run's end — it alone knows the exit status,
the signal, the timeout and the output — so nothing the child does ends the run (`lifecycle._end_attached`):

- the child's `end_run(outcome, stats)` ends its open steps and records its view in the run's summary_json,
  under "child": `{"outcome": ..., "summary": stats}`. A child reporting `partial` or `failure` makes a run
  whose command exits 0 `partial` / `failure` (the worse of the two wins; an outcome never gets better);
- a crash of the child (uncaught exception, signal) adds its crash row with the stack and ends its steps
  `failure`; the wrapper then records the exit status as well;
- a child that exits without end_run leaves the outcome to its exit status: its open steps end `failure`,
  and no crash row is added (the wrapper records the exit code itself).
"""

from __future__ import annotations

import logging
import os

from ..base.outcomes import FAILURE, PARTIAL, SUCCESS
from ..settings.state import environment
from ..settings.values import DB_ENV, resolve_db

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger("runtracker")

RUN_ID_ENV = "RUNTRACKER_RUN_ID"
_RANK = {SUCCESS: 0, PARTIAL: 1, FAILURE: 2}


def target(db: object) -> int | None:
    """The wrapper's run this process should join, if it was started by `runtracker exec` for a tracker on the
    same database (`db`: the tracker's own setting); None to start a run of its own."""
    raw = os.environ.get(RUN_ID_ENV)
    if not raw:
        return None
    try:
        run_id = int(raw)
    except ValueError:
        log.warning("runtracker: %s=%r is not a run id; starting a run of its own", RUN_ID_ENV, raw)
        return None
    if db is not None and environment(DB_ENV) and str(resolve_db(db)) != str(resolve_db(None)):
        return None  # the tracker writes to another database than the wrapper's
    return run_id


def child_view(summary_json: str | None) -> dict[str, Any] | None:
    """What attached children reported, from a run's summary_json (the wrapper reads it before ending the run)."""
    view = _summary(summary_json).get("child")
    return view if isinstance(view, dict) else None


def worse(a: str, b: str) -> str:
    return a if _RANK.get(a, 2) >= _RANK.get(b, 2) else b


def merge_view(summary_json: str | None, outcome: str, stats_json: str | None) -> str:
    """The run's summary_json with a child's view folded in. Several attached trackers (or children): the worst
    outcome stays, and the latest stats."""
    previous = child_view(summary_json) or {}
    if previous.get("outcome") in _RANK:
        outcome = worse(previous["outcome"], outcome)
    view: dict[str, Any] = {"outcome": outcome}
    summary = _summary(stats_json) if stats_json else previous.get("summary")
    if summary:
        view["summary"] = summary
    import json  # here: only a child of `runtracker exec` needs it

    return json.dumps({"child": view}, ensure_ascii=False)


def _summary(summary_json: str | None) -> dict[str, Any]:
    if not summary_json:
        return {}
    import json

    try:
        value = json.loads(summary_json)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {"value": value}
