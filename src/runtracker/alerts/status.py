"""Each scheduled pipeline's state as the dashboard shows it: next run, overdue since, runs too long.

The same rules as the monitor's (`watcher`, `runtracker.base.schedule`): overdue once the first scheduled time after
the latest start is `grace` old (a pipeline that never ran counts from when a monitor first watched it, else
from now). Read-only: two statements per call (every pipeline's latest start; the monitors' record of when each
was first watched), and the schedule arithmetic is remembered until it can change. Without croniter (the
`alerts` extra) there is nothing to say: `available()` is False and `statuses` returns nothing.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from typing import Any

from ..base.clock import to_ms
from ..base.records import Record
from ..base.schedule import first_missed, too_long
from ..settings.pipelines import PipelineConfig
from ..storage import Store
from ..storage.alerts import AlertStore
from .messages import local_time


class PipelineStatus(Record):
    """What the overview says about one pipeline's schedule (times in ms since the epoch)."""

    __slots__ = ("pipeline", "next_run_ms", "overdue_since_ms", "too_long", "overdue_text", "next_text")

    def __init__(self, pipeline: str, next_run_ms: int | None, overdue_since_ms: int | None, too_long: list[int],
                 overdue_text: str | None, next_text: str | None) -> None:
        self.pipeline = pipeline
        self.next_run_ms = next_run_ms
        self.overdue_since_ms = overdue_since_ms
        self.too_long = too_long  # ids of its `running` runs past max_runtime
        self.overdue_text = overdue_text  # "Overdue since today 07:00 CEST"
        self.next_text = next_text  # "Next: today 07:00 CEST"


def available() -> bool:
    """Whether schedules can be evaluated here (croniter is installed)."""
    return importlib.util.find_spec("croniter") is not None


class Schedules:
    """Statuses for the dashboard, with the schedule arithmetic remembered between requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Keyed by pipeline and schedule, so that a changed config file is never answered from memory.
        self._next: dict[tuple[str, Any], tuple[int, int | None]] = {}  # -> (computed at, next run)
        self._missed: dict[tuple[str, Any], tuple[int, int | None]] = {}  # -> (start, first missed time)

    def statuses(self, store: Store, config: PipelineConfig, now_ms: int,
                 running: Sequence[dict[str, Any]] = ()) -> dict[str, PipelineStatus]:
        """The status of every pipeline of `config` with a schedule or a maximum runtime; `running`: the
        `running` runs (for "too long"), if the caller has them."""
        pipelines = config.scheduled()
        if not pipelines or not available():
            return {}
        names = [p.name for p in pipelines]
        alerts = AlertStore(store)
        latest = alerts.latest_starts(names)
        watched = alerts.watched_since(names)
        found = {}
        for pipeline in pipelines:
            schedule, tz = pipeline.watch.schedule, pipeline.watch.timezone
            next_run = missed = None
            if schedule is not None:
                next_run = self._next_run(pipeline.name, schedule, now_ms)
                start = to_ms(latest.get(pipeline.name)) or to_ms(watched.get(pipeline.name))
                if start is not None:
                    missed = self._first_missed(pipeline.name, schedule, start)
                if missed is not None and missed + pipeline.watch.grace_s * 1000 > now_ms:
                    missed = None
            long_runs = [int(r["id"]) for r in running if r.get("pipeline") == pipeline.name
                         and too_long(to_ms(r.get("started_at")), pipeline.watch.max_runtime_s, now_ms)]
            found[pipeline.name] = PipelineStatus(
                pipeline.name, next_run, missed, long_runs,
                f"Overdue since {local_time(missed, tz, now_ms)}" if missed is not None else None,
                f"Next: {local_time(next_run, tz, now_ms)}" if next_run is not None else None)
        return found

    def _next_run(self, name: str, schedule: Any, now_ms: int) -> int | None:
        with self._lock:
            cached = self._next.get((name, schedule))
        if cached is not None and (cached[1] is None or cached[0] <= now_ms < cached[1]):
            return cached[1]
        value = schedule.next(now_ms)
        with self._lock:
            self._next[(name, schedule)] = (now_ms, value)
        return value  # type: ignore[no-any-return]

    def _first_missed(self, name: str, schedule: Any, start_ms: int) -> int | None:
        with self._lock:
            cached = self._missed.get((name, schedule))
        if cached is not None and cached[0] == start_ms:
            return cached[1]
        value = first_missed(schedule, start_ms)
        with self._lock:
            self._missed[(name, schedule)] = (start_ms, value)
        return value
