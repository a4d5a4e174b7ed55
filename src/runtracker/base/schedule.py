"""Schedules: when a pipeline was due last and when it is due next (whether it is overdue: `runtracker.base.status`).

A schedule is one or more cron expressions read in a time zone (`Europe/Amsterdam`). croniter parses and
iterates the expressions; this module only maps the local wall-clock times croniter gives to instants, the way
cron itself treats the two days a year that daylight saving time changes:

- **spring forward** (02:00 → 03:00 in Amsterdam): a time that does not exist that day (02:30) is due at the
  moment the clock jumps past it (03:00 CEST), once;
- **fall back** (03:00 → 02:00): a time that occurs twice (02:30) is due once, at its first occurrence (CEST).

Both are what a cron daemon does with fixed-time jobs, so a pipeline that cron starts is never taken for
overdue because of a DST change. croniter's own time-zone handling fires a fall-back time twice, which would
make a pipeline that ran once look overdue a few hours later: hence the wall-clock iteration here.

Every instant is milliseconds since the epoch (as `clock.now_ms`). croniter and zoneinfo are imported when a
schedule is first used, never by `import runtracker` nor by `runtracker exec`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from . import zones

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

MISSING = (
    "schedules need croniter, which is not installed: pip install 'runtracker[alerts]' (the monitor reaps "
    "without it, but evaluates no schedule and sends no alert)"
)
# The largest change of a zone's UTC offset at once (DST is one hour; a few zones changed by more, once).
_MAX_SHIFT = timedelta(hours=3)
# A wall-clock time in a spring-forward gap is due when the clock jumps past it; found to the second.
_SECOND = timedelta(seconds=1)


def croniter_class() -> Any:
    """croniter's iterator class, or ImportError naming the extra to install."""
    try:
        from croniter import croniter
    except ImportError as exc:
        raise ImportError(MISSING) from exc
    return croniter


def zone(name: str) -> Any:
    """The zoneinfo time zone `name`; ValueError when there is none of that name (`zones.zone`)."""
    return zones.zone(name)


def check_expression(expression: str) -> None:
    """ValueError naming the problem when croniter cannot read `expression`."""
    croniter = croniter_class()
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise ValueError(f"not a cron expression: {expression!r} (five fields: minute hour day month weekday, "
                         "e.g. \"15 3 * * *\"; or @daily, @hourly)")


@dataclass(frozen=True)
class Schedule:
    """When a pipeline is due: cron expressions read in a time zone."""

    expressions: tuple[str, ...]
    timezone: str = "UTC"

    def previous(self, now_ms: int) -> int | None:
        """The latest scheduled instant at or before `now_ms`; None if there is none."""
        found = [t for t in (self._previous(e, now_ms) for e in self.expressions) if t is not None]
        return max(found) if found else None

    def next(self, after_ms: int) -> int | None:
        """The first scheduled instant strictly after `after_ms`; None if there is none."""
        found = [t for t in (self._next(e, after_ms) for e in self.expressions) if t is not None]
        return min(found) if found else None

    # Wall-clock times map to instants monotonically (a time that occurs twice takes its first occurrence, one
    # that does not exist the jump past it): so walking croniter's wall-clock times in order walks instants in
    # order, and the first one past `now` in the walk's direction is the answer.
    def _next(self, expression: str, after_ms: int) -> int | None:
        tz = zone(self.timezone)
        wall = _wall(after_ms, tz)
        walk = croniter_class()(expression, wall)
        for _ in range(10_000):  # a minute schedule skips at most an hour of times that occurred already
            at = to_instant(walk.get_next(datetime), tz)
            if at > after_ms:
                return at
        return None

    def _previous(self, expression: str, now_ms: int) -> int | None:
        tz = zone(self.timezone)
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        # Just after the clocks went back, wall-clock times up to one shift ahead of now's (the hour that
        # repeats) map to instants already past: start the walk that far ahead.
        before, after = (now - _MAX_SHIFT).astimezone(tz).utcoffset(), now.astimezone(tz).utcoffset()
        shift = max(timedelta(0), (before or timedelta(0)) - (after or timedelta(0)))
        walk = croniter_class()(expression, _wall(now_ms, tz) + shift + _SECOND)
        for _ in range(10_000):
            at = to_instant(walk.get_prev(datetime), tz)
            if at <= now_ms:
                return at
        return None


def to_instant(wall: datetime, tz: Any) -> int:
    """Milliseconds since the epoch of a naive wall-clock time in `tz`, as cron runs it: a time that occurs twice
    is its first occurrence; a time that does not exist is the moment the clock jumps past it."""
    first = wall.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall:
        return _ms(first)
    # In a gap: fold=1 reads it with the offset after the jump (an instant before it), fold=0 with the offset
    # before (an instant after it). The first instant whose wall clock reads `wall` or later is the jump.
    low, high = wall.replace(tzinfo=tz, fold=1).astimezone(UTC), first.astimezone(UTC)
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return _ms(high.replace(microsecond=0))


def _wall(ms: int, tz: Any) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz).replace(tzinfo=None)


def _ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def croniter_available() -> bool:
    """Whether schedules can be evaluated here (croniter, of the `alerts` extra, is installed)."""
    import importlib.util

    return importlib.util.find_spec("croniter") is not None


class NextTimes:
    """A memo of `Schedule.next`, the one cache of schedule arithmetic (the overview, /metrics, the API and the
    monitor all ask it). Pure: an answer depends only on the schedule and the instant, never on the database.

    `next(t)` is the same for every `t` from one asked instant up to its answer (no scheduled instant lies
    between), so what is kept is intervals: for a pipeline that started on time, "due after its start" and "due
    after now" fall in the same interval, and each is computed once per scheduled time instead of per request.
    Keyed by the schedule (its expressions and time zone), so a changed config file is never answered from
    memory. Threads may race on an entry: the loser's interval is dropped, never a wrong one kept."""

    # Intervals kept per schedule. Pipelines sharing a schedule (a hundred on "0 */8 * * *") each ask after their
    # own latest start: those that started in the same period share an interval, but a busy schedule's starts
    # fall in many periods, and with too few intervals kept each request would walk croniter again for most.
    PER_SCHEDULE = 256
    SCHEDULES = 1024  # schedules kept; past it the memo starts again empty

    def __init__(self) -> None:
        # Per schedule: its intervals [low, high) sorted by `high` (disjoint: each lies between two scheduled
        # instants and ends at the second), as two tuples, the highs apart for bisect.
        self._spans: dict[Schedule, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def after(self, schedule: Schedule, at_ms: int) -> int | None:
        """`schedule.next(at_ms)`: the first scheduled instant strictly after `at_ms`."""
        highs, lows = self._spans.get(schedule, ((), ()))
        k = bisect.bisect_right(highs, at_ms)  # the first interval ending after at_ms
        if k < len(highs) and lows[k] <= at_ms:
            return highs[k]
        found = schedule.next(at_ms)
        if found is None:
            return None  # no next time (or none within the walk's bound): not kept, rare and not a span
        spans = dict(zip(highs, lows, strict=True))
        spans[found] = min(spans.get(found, at_ms), at_ms)
        if len(spans) > self.PER_SCHEDULE:  # the intervals furthest in the past go first
            for high in sorted(spans)[: len(spans) - self.PER_SCHEDULE]:
                del spans[high]
        if len(self._spans) >= self.SCHEDULES and schedule not in self._spans:
            self._spans = {}
        ordered = sorted(spans)
        self._spans[schedule] = (tuple(ordered), tuple(spans[h] for h in ordered))
        return found

    def clear(self) -> None:
        self._spans = {}


NEXT_TIMES = NextTimes()


def local_time(ms: int | None, tz_name: str, now_ms: int | None = None) -> str:
    """A moment as people read it in the pipeline's time zone: `07:00 CET` today, `tomorrow 07:00 CET`,
    `yesterday 23:15 CET`, else `Mon 2026-03-30 07:00 CEST`."""
    if ms is None:
        return "never"
    tz = zone(tz_name)
    moment = datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz)
    text = moment.strftime("%H:%M %Z")
    if now_ms is None:
        return moment.strftime("%Y-%m-%d ") + text
    today = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(tz).date()
    days = (moment.date() - today).days
    if days == 0:
        return f"today {text}"
    if days in (1, -1):
        return f"{'tomorrow' if days == 1 else 'yesterday'} {text}"
    return moment.strftime("%a %Y-%m-%d ") + text
