"""A pipeline's status, decided in one place: its last start, its running runs, since when it is overdue, which
runs run too long, and when it is due next (docs/alerts.md#overdue-next-run-too-long).

`pipeline_status` is the rule, as healthchecks' `Check.get_status()` is: a pure function of what the caller
read (`PipelineFacts`), what the config file expects of the pipeline (`Expectations`: its `Watch`) and the time
`now`. No I/O, no clock of its own. The overview, `/metrics`, the JSON API (runtracker.web) and the monitor's
alerts (runtracker.alerts.watcher) all call it; the schedule arithmetic it needs is remembered in one memo,
`schedule.NEXT_TIMES`.

- **Overdue**: *missed* = the first scheduled time after the pipeline's latest start (a start up to
  `EARLY_START_MS` before a scheduled time counts for it); overdue once `now` ≥ *missed* + grace, "since
  *missed*". A pipeline that never ran counts from when a monitor first watched it; one that never ran and was
  never watched is not overdue (it counts from now, and now is never overdue).
- **Too long**: a run still `running` for longer than the pipeline's `max_runtime`.
- **Next due**: the first scheduled time after `now`.
- **Late heartbeat**: a run still `running` whose `heartbeat_at` is older than LATE_BEATS heartbeat intervals,
  or than the timeout after which the reaper judges another host's run lost (`liveness.judge`) if that comes
  first (`heartbeat_late_after_s`; 30 s with the defaults): it looks late before it is reaped. A run that never
  beat (the ingest API's, the original tool's) is never late. The run page uses the same rule
  (`heartbeat_late_s`).
- **State**: one word per pipeline, the badge the overview shows and /metrics and /api/pipelines give (STATES).
  When several apply, the first of these wins: late heartbeat (its run may be dead), too long, running,
  failing (its latest finished run ended `failure`), overdue, ok (its latest finished run ended `success` or
  `partial`), never ran. A failing pipeline that is overdue too is `failing`: the failure is what to read
  first, and the card still says since when it is overdue. `silenced` is reserved: nothing sets it yet.
"""

from __future__ import annotations

from collections.abc import Sequence

from .clock import to_ms
from .outcomes import FAILURE, RUNNING
from .records import Record
from .schedule import NEXT_TIMES, Schedule

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Expectations(Protocol):
        """What the config file expects of a pipeline (`configfile.Watch` is one)."""

        @property
        def schedule(self) -> Schedule | None: ...
        @property
        def grace_s(self) -> float: ...
        @property
        def max_runtime_s(self) -> float | None: ...

# A start this long before a scheduled time counts for it: the run's started_at is its own host's clock, and
# a host a few seconds ahead (or a timer that fires early) must not make a pipeline that ran look overdue.
EARLY_START_MS = 60_000

# The states, most urgent first: the overview's default order and its summary line (`base.status` docstring).
FAILING = "failing"
OVERDUE = "overdue"
TOO_LONG = "too long"
LATE_HEARTBEAT = "late heartbeat"
RUNNING_STATE = "running"
OK = "ok"
NEVER_RAN = "never ran"
SILENCED = "silenced"  # reserved for the next issue: nothing sets it yet
STATES = (FAILING, OVERDUE, TOO_LONG, LATE_HEARTBEAT, RUNNING_STATE, OK, NEVER_RAN, SILENCED)


class PipelineFacts(Record):
    """What the database says about one pipeline, as the caller read it (times in ms since the epoch)."""

    __slots__ = ("last_started_ms", "running", "watched_since_ms", "last_outcome")

    def __init__(self, last_started_ms: int | None, running: Sequence[dict[str, Any]] = (),
                 watched_since_ms: int | None = None, last_outcome: str | None = None) -> None:
        self.last_started_ms = last_started_ms  # when its latest run started, whatever its outcome; None: never
        # its `running` runs (rows with `id`, `started_at` and, for a late heartbeat, `heartbeat_at`), oldest first
        self.running = tuple(running)
        self.watched_since_ms = watched_since_ms  # when a monitor first watched it (alert_pipelines), if ever
        self.last_outcome = last_outcome  # the outcome of its latest finished run; None: none finished


class PipelineStatus(Record):
    """One pipeline's status at one moment (times in ms since the epoch)."""

    __slots__ = ("pipeline", "watched", "last_started_ms", "running", "overdue_since_ms", "too_long", "next_due_ms",
                 "late_heartbeat", "last_outcome", "state")

    def __init__(self, pipeline: str, watched: bool, last_started_ms: int | None, running: tuple[dict[str, Any], ...],
                 overdue_since_ms: int | None, too_long: list[int], next_due_ms: int | None,
                 late_heartbeat: list[int] | None = None, last_outcome: str | None = None) -> None:
        self.pipeline = pipeline
        self.watched = watched  # it has a schedule or a maximum runtime: something can be overdue or too long
        self.last_started_ms = last_started_ms
        self.running = running  # its `running` runs, oldest first
        self.overdue_since_ms = overdue_since_ms  # the scheduled time it missed; None while not overdue
        self.too_long = too_long  # ids of its running runs past max_runtime
        self.next_due_ms = next_due_ms  # its next scheduled time after now; None without a schedule
        self.late_heartbeat = late_heartbeat or []  # ids of its running runs whose heartbeat is late
        self.last_outcome = last_outcome
        self.state = state_of(self)  # one of STATES

    @property
    def oldest_running(self) -> dict[str, Any] | None:
        """The run the overview and /metrics show as the pipeline's running one."""
        return self.running[0] if self.running else None


def pipeline_status(pipeline: str, expect: Expectations, facts: PipelineFacts, now_ms: int,
                    heartbeat: tuple[float, float] | None = None) -> PipelineStatus:
    """The status of `pipeline` at `now_ms` (the rules: this module's docstring). `heartbeat`: the heartbeat
    interval and the reaper's timeout for another host's heartbeat, in seconds (`settings.values`); None: no
    heartbeat is judged late."""
    schedule = expect.schedule
    overdue = next_due = None
    if schedule is not None:
        next_due = NEXT_TIMES.after(schedule, now_ms)
        start = facts.last_started_ms if facts.last_started_ms is not None else facts.watched_since_ms
        if start is not None:
            overdue = overdue_since(schedule, expect.grace_s, start, now_ms)
    limit = expect.max_runtime_s
    long_runs = [int(run["id"]) for run in facts.running
                 if limit is not None and too_long(to_ms(run.get("started_at")), limit, now_ms)]
    late = [int(run["id"]) for run in facts.running
            if heartbeat is not None and heartbeat_late(run, now_ms, *heartbeat)]
    watched = schedule is not None or expect.max_runtime_s is not None
    return PipelineStatus(pipeline, watched, facts.last_started_ms, facts.running, overdue, long_runs, next_due,
                          late, facts.last_outcome)


def state_of(status: PipelineStatus) -> str:
    """The pipeline's one state: the first that applies, in the order of this module's docstring."""
    if status.late_heartbeat:
        return LATE_HEARTBEAT
    if status.too_long:
        return TOO_LONG
    if status.running:
        return RUNNING_STATE
    if status.last_outcome == FAILURE:
        return FAILING
    if status.overdue_since_ms is not None:
        return OVERDUE
    if status.last_outcome is not None or status.last_started_ms is not None:
        return OK
    return NEVER_RAN


def heartbeat_late(run: dict[str, Any], now_ms: int, interval_s: float, timeout_s: float) -> bool:
    """Whether a `running` run's last heartbeat is late (`heartbeat_late_after_s`); a run without one (it never
    beat) is not late."""
    beat = to_ms(run.get("heartbeat_at"))
    return beat is not None and (now_ms - beat) / 1000 > heartbeat_late_after_s(interval_s, timeout_s)


def overdue_since(schedule: Schedule, grace_s: float, last_start_ms: int, now_ms: int) -> int | None:
    """The first scheduled instant after `last_start_ms` once its grace has passed at `now_ms`; None while the
    pipeline is not overdue. `last_start_ms`: its latest run's start (or when watching it began)."""
    missed = NEXT_TIMES.after(schedule, last_start_ms + EARLY_START_MS)
    if missed is None or now_ms < missed + grace_s * 1000:
        return None
    return missed


def too_long(started_ms: int | None, max_runtime_s: float | None, now_ms: int) -> bool:
    """Whether a run still `running` has run longer than its pipeline's maximum runtime."""
    return max_runtime_s is not None and started_ms is not None and now_ms - started_ms > max_runtime_s * 1000


# A running run's heartbeat is late once it is older than LATE_BEATS heartbeat intervals (one slow beat is no
# news: a busy database, a loaded host), or than the reaper's timeout if that comes first. Its process may be
# dead or stuck: the run page says so before a reaper ends it (another host's run, after the timeout).
LATE_BEATS = 3


def heartbeat_late_after_s(interval_s: float, timeout_s: float) -> float:
    """How old a running run's heartbeat may get before it is late (`heartbeat_late_s`)."""
    return min(LATE_BEATS * interval_s, timeout_s)


def heartbeat_late_s(run: dict[str, Any], now_ms: int, interval_s: float, timeout_s: float) -> float | None:
    """Seconds since a `running` run's last heartbeat when that heartbeat is late; None when it is not, the run
    has ended, or it records no heartbeat (a run of the original tool; of the ingest API before its first beat).
    `interval_s`, `timeout_s`: the heartbeat settings of the one who asks, which the pipelines are to share."""
    beat = to_ms(run.get("heartbeat_at"))
    if run.get("outcome") != RUNNING or beat is None or not heartbeat_late(run, now_ms, interval_s, timeout_s):
        return None
    return (now_ms - beat) / 1000
