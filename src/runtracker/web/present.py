"""What the pages show, made from rows: durations and times as people read them, the overview's cards, the
charts' geometry (numbers only: the templates draw the SVG, and escape every text), the crash panel.

Everything shown came from outside (pipeline names, messages, stacks, member ids, output tails): it stays
text here and Jinja2's autoescaping renders it as text. The one piece of markup made here is a chart's bars
(`chart`): hundreds of `<rect>`s cost a Jinja2 loop 14 µs each, a third of the overview's time; the text in
them goes through markupsafe's `escape` as a template's would.
"""

from __future__ import annotations

import functools
import json
import re
import statistics
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

from ..base import zones
from ..base.clock import now_ms, to_ms
from ..base.outcomes import FAILURE, PARTIAL, RUNNING, SUCCESS
from ..base.records import Record
from ..base.schedule import local_time, zone
from ..base.status import NEVER_RAN, PipelineStatus, heartbeat_late_s
from ..core.ending import END_OBSERVED, ESTIMATED_FROM, LOST
from ..core.logring import split_stack
from ..core.reaper import LOST_PREFIX

# A run is flagged as slow when it took more than SLOW_FACTOR times the median of the pipeline's last
# SLOW_BASIS successful runs (at least SLOW_MIN_BASIS of them).
SLOW_FACTOR = 3.0
SLOW_BASIS = 30
SLOW_MIN_BASIS = 5
RECENT_RUNS = 30  # the overview's sparkline and success rate
USUAL_RUNS = 10  # "the last 10 successful runs took 8–11m"

CRASH_KINDS = {
    "uncaught_exception": "uncaught exception",
    "exception": "exception in the run's block",
    "keyboard_interrupt": "interrupted (Ctrl-C)",
    "signal": "killed by a signal",
    "exit": "exit without end_run",
    "lost": "lost process",
    "timeout": "timeout",
    "not_found": "command not found",
    "not_executable": "command not executable",
}


def duration(ms: object) -> str:
    """`350 ms`, `4.2 s`, `8m 12s`, `2h 05m`, `3d 4h`; `–` when unknown."""
    if not isinstance(ms, int | float) or ms < 0:
        return "–"
    ms = int(ms)
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    seconds = ms // 1000
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def plural(count: object, one: str, many: str | None = None) -> str:
    """`1 error`, `2 errors`, `1,204 runs`, `1 kind of error` / `3 kinds of error` (`many` given): the number
    with the word that goes with it. Every count a page shows in words goes through here (the `plural` filter)."""
    n = count if isinstance(count, int) else 0
    word = one if n == 1 else (many if many is not None else one + "s")
    return f"{n:,} {word}"


def short_duration(ms: int) -> str:
    """`8m`, `45s`, `2h`, `144 ms`: for ranges."""
    if ms < 1000:
        return f"{max(ms, 0)} ms"
    seconds = ms // 1000
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{round(seconds / 60)}m"
    return f"{seconds / 3600:.1f}h".replace(".0h", "h")


# -- times, in the display zone ---------------------------------------------------------------------------------
class DisplayZone(Record):
    """The zone a page shows times in, and where it came from (settings/display: `user`, `browser`, `environment`,
    `config file` or `default`), for the page's footer."""

    __slots__ = ("name", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source

    @property
    def label(self) -> str:
        """Where the zone came from, as the page's footer says it."""
        return _ZONE_LABELS.get(self.source, self.source)


_ZONE_LABELS = {"user": "your own setting", "browser": "your browser's zone", "environment": "the server's setting",
                "config file": "the dashboard's setting", "default": "the default"}


UTC_ZONE = DisplayZone(zones.DEFAULT, "default")
# The zone of the page being made: set by `in_zone` around a request's view and its rendering (web/core.py), read
# by every function below that writes a time. One place: a page that shows times with the `when` and `at`
# macros, or the `ago`, `local` and `utc` filters, shows them in the reader's zone with nothing more to do.
_zone: ContextVar[DisplayZone | None] = ContextVar("runtracker_display_zone", default=None)


@contextmanager
def in_zone(zone: DisplayZone) -> Iterator[DisplayZone]:
    """Times written inside the block are in `zone`."""
    token = _zone.set(zone)
    try:
        yield zone
    finally:
        _zone.reset(token)


def display_zone() -> DisplayZone:
    """The zone of the page being made (UTC outside a page)."""
    return _zone.get() or UTC_ZONE


def zone_is_set() -> bool:
    return _zone.get() is not None


def local(moment: object) -> str:
    """`2026-03-29 03:15:00 CEST`: a stored time (or milliseconds) in the display zone; `–` for none, and the text
    itself when it is not a time (a row written by another tool)."""
    written = _written(moment, display_zone().name)
    return str(moment or "–") if written is None else written[0]


def utc(moment: object) -> str:
    """`2026-03-29 01:15:00.123 UTC`: a stored time (or milliseconds) as stored, for a tooltip; "" for none."""
    written = _written(moment, display_zone().name)
    return "" if written is None else written[1]


def exact(moment: object) -> str:
    """A relative time's tooltip: the exact time in the display zone, and in UTC unless that is the zone."""
    written = _written(moment, display_zone().name)
    return str(moment or "") if written is None else written[2]


def _written(moment: object, zone: str) -> tuple[str, str, str] | None:
    """(local, utc, exact) of a time in `zone`; None when it is not one."""
    if isinstance(moment, str):
        return _written_text(moment, zone)
    if isinstance(moment, int) and not isinstance(moment, bool):
        return _texts(moment, zone)
    return None


@functools.lru_cache(maxsize=16384)
def _written_text(moment: str, zone: str) -> tuple[str, str, str] | None:
    # The same stored times are written again at every refresh of every page (the overview's 200 cards each
    # minute): writing one costs tens of microseconds, looking it up here a fraction of one.
    at = to_ms(moment)
    return None if at is None else _texts(at, zone)


def _texts(at: int, zone: str) -> tuple[str, str, str]:
    here, there = zones.local_text(at, zone), zones.utc_text(at)
    return here, there, there if zone == zones.DEFAULT else f"{here} · {there}"


def ago(moment: object, now: int | None = None) -> str:
    """`just now`, `5 min ago`, `3 h ago`, `2 days ago`; ahead: `in 20 min`, `in 3 h`, `in 2 days`; the text
    itself when it is not a time. Less than 45 s either way is `just now` (another host's clock may be ahead)."""
    at = moment if isinstance(moment, int) and not isinstance(moment, bool) else to_ms(moment)
    if at is None:
        return str(moment or "–")
    delta = ((now_ms() if now is None else now) - at) // 1000
    ahead = delta < 0
    delta = abs(delta)
    if delta < 45:
        return "just now"
    if delta < 3600:
        text = f"{max(1, round(delta / 60))} min"
    elif delta < 86400 * 2:
        text = f"{round(delta / 3600)} h"
    else:
        text = f"{round(delta / 86400)} days"
    return f"in {text}" if ahead else f"{text} ago"


def elapsed_ms(started_at: object, now: int | None = None) -> int:
    at = to_ms(started_at)
    return 0 if at is None else max(0, (now_ms() if now is None else now) - at)


def summary(run: dict[str, Any]) -> dict[str, Any]:
    """The run's summary_json as an object; {} when it is missing or not an object."""
    try:
        value = json.loads(run.get("summary_json") or "null")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def median(values: Sequence[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def is_slow(run: dict[str, Any], usual_ms: float | None) -> bool:
    value = run.get("duration_ms")
    return (usual_ms is not None and usual_ms > 0 and isinstance(value, int) and run.get("outcome") != RUNNING
            and value > SLOW_FACTOR * usual_ms)


def usual(durations: Sequence[int]) -> float | None:
    """The median of these successful durations, if there are enough of them to judge by."""
    return median(durations) if len(durations) >= SLOW_MIN_BASIS else None


# -- the overview ---------------------------------------------------------------------------------------------
def card(name: str, latest_runs: list[dict[str, Any]], recent: list[dict[str, Any]],
         running: dict[str, Any] | None, usual_durations: list[int], command: bool, now: int) -> dict[str, Any]:
    """One pipeline's card: status, last run, counts, the running line, sparkline, success rate. `latest_runs`:
    its last two runs (every column), `recent`: its last RECENT_RUNS (the chart's columns), newest first."""
    latest = latest_runs[0] if latest_runs else None
    finished = [r for r in recent if r["outcome"] != RUNNING]
    last_finished = next((r for r in latest_runs if r["outcome"] != RUNNING), None)
    status = RUNNING if running else (finished[0]["outcome"] if finished else NEVER_RAN)
    successes = sum(1 for r in finished if r["outcome"] == SUCCESS)
    shown = last_finished or latest
    running_line = None
    if running is not None:
        running_line = f"running for {duration(elapsed_ms(running['started_at'], now))}"
        if usual_durations:
            low, high = min(usual_durations), max(usual_durations)
            took = short_duration(low) if short_duration(low) == short_duration(high) else \
                f"{short_duration(low)}–{short_duration(high)}"
            last = "the last successful run" if len(usual_durations) == 1 else \
                f"the last {len(usual_durations)} successful runs"
            running_line += f" — {last} took {took}"
    return {
        "name": name,
        "status": status,
        "latest": latest,
        "shown": shown,
        "running": running,
        "running_line": running_line,
        "last_ago": ago(shown["started_at"], now) if shown else None,
        "success_rate": (round(100 * successes / len(finished)) if finished else None),
        "successes": successes,
        "finished": len(finished),
        "sparkline": chart(list(reversed(recent)), 150.0, 28.0, now, slots=RECENT_RUNS),
        "command": command,
    }


# -- the overview at scale: names as people sort and search them, and why a run failed -------------------------
_DIGITS = re.compile(r"(\d+)")
WHY_CHARS = 140  # the card's "why it failed" line is cut here


@functools.lru_cache(maxsize=8192)
def folded(text: str) -> str:
    """`text` as the overview compares it: case folded, accents dropped (NFKD, combining marks left out), so
    "Zürich" matches and sorts with "zurich" on every machine (no locale)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@functools.lru_cache(maxsize=8192)
def name_key(text: str) -> tuple[Any, ...]:
    """The order people sort names in: folded (`folded`), and the numbers in them as numbers ("sync 2" before
    "sync 10"); the text as given breaks ties. Split on digits, the parts alternate text and number, so two
    keys compare text with text and number with number."""
    parts = _DIGITS.split(folded(text))
    return (*(int(part) if i % 2 else part for i, part in enumerate(parts)), text)


def matches(search: str, *texts: str | None) -> bool:
    """Whether the folded `search` is in one of the folded `texts` (the overview's name search)."""
    needle = folded(search.strip())
    return any(needle in folded(text) for text in texts if text)


def one_line(text: object, limit: int = WHY_CHARS) -> str | None:
    """The first non-empty line of `text`, cut at `limit` characters ("…")."""
    line = next((part.strip() for part in str(text or "").splitlines() if part.strip()), "")
    return (line[: limit - 1] + "…" if len(line) > limit else line) or None


def why_failed(run: dict[str, Any] | None, detail: dict[str, Any] | None) -> str | None:
    """A card's one line on why its last finished run failed (or ended partial): how it crashed (kind, signal
    or exit status), then its error message — the crash's, else the run's first error — on one line, cut. None
    for a run that did not fail. `detail`: `Dashboard.why_failed`'s row of the run."""
    if run is None or run.get("outcome") not in (FAILURE, PARTIAL) or detail is None:
        return None
    info = summary(detail)
    reaped = bool(run.get("reaped_at")) or run.get("ended_by") == "reaper"
    kind = "timeout" if info.get("timeout") else str(info.get("kind") or ("lost" if reaped else "")) or None
    exit_code = detail.get("exit_code") if detail.get("exit_code") is not None else info.get("exit_code")
    how = CRASH_KINDS.get(kind, kind) if kind else None
    if info.get("signal"):
        how = f"{how or 'killed'} ({info['signal']})"
    elif isinstance(exit_code, int) and exit_code != 0 and kind not in ("not_found", "not_executable"):
        how = f"{how}, exit status {exit_code}" if how else f"exit status {exit_code}"
    message = one_line(info.get("error") or detail.get("first_error"))
    if message and kind == "lost" and message.startswith(LOST_PREFIX):  # "lost process: pid 7 ...", not twice
        message = message[len(LOST_PREFIX):]
    if how and message and message.startswith(how):  # "exit status 3: ..." said once, not twice
        return message
    return f"{how}: {message}" if how and message else how or message


def schedule(status: PipelineStatus, now: int) -> dict[str, Any]:
    """A card's lines about its schedule, times in the display zone: "Overdue since today 07:00 CEST",
    "Next: tomorrow 07:00 CEST" (None without one), each with its UTC time for a tooltip, and the ids of its
    runs running too long."""
    overdue, following = status.overdue_since_ms, status.next_due_ms
    zone = display_zone().name
    return {
        "overdue_text": f"Overdue since {local_time(overdue, zone, now)}" if overdue is not None else None,
        "overdue_utc": utc(overdue) if overdue is not None else None,
        "next_text": f"Next: {local_time(following, zone, now)}" if following is not None else None,
        "next_utc": utc(following) if following is not None else None,
        "too_long": status.too_long,
    }


_CLASSES = frozenset((SUCCESS, PARTIAL, FAILURE, RUNNING))


def chart(runs: list[dict[str, Any]], width: float, height: float, now: int, usual_ms: float | None = None,
          link: bool = False, gap: float = 1.0, slots: int = 0, scale_ms: int | None = None) -> Markup:
    """Runs (oldest first) as SVG bars: height by duration against the longest (capped at 4x the usual
    duration, so one stuck run does not flatten the rest), class by outcome (and `slow`), a `<title>` each, and
    with `link` a link to the run's page; room for at least `slots` bars (a few runs are not drawn as walls);
    `scale_ms`, the duration at full height (an axis's top, `axes`), instead of that rule.
    The title holds text from the database and is escaped; everything else is a number or one of our class
    names. One loop, no template: the overview draws 360 bars."""
    if not runs:
        return Markup("")
    if all(r["outcome"] != RUNNING for r in runs):
        # The same finished runs draw the same bars: the overview, refreshed every minute by everyone, mostly
        # redraws what it drew before. (A running run's bar grows: it is drawn anew.)
        key = tuple((r["id"], r["outcome"], r["duration_ms"], r["started_at"]) for r in runs)
        return _chart_of_finished(key, width, height, usual_ms, link, gap, slots, scale_ms, display_zone().name)
    return _draw(runs, width, height, now, usual_ms, link, gap, slots, scale_ms)


@functools.lru_cache(maxsize=4096)
def _chart_of_finished(key: tuple[tuple[Any, ...], ...], width: float, height: float, usual_ms: float | None,
                       link: bool, gap: float, slots: int, scale_ms: int | None, zone: str) -> Markup:
    # `zone`: the bars' titles show each run's start in it, so it is part of the key (set by the caller's page).
    runs = [{"id": i, "outcome": o, "duration_ms": d, "started_at": s} for i, o, d, s in key]
    return _draw(runs, width, height, 0, usual_ms, link, gap, slots, scale_ms)


def _durations(runs: list[dict[str, Any]], now: int) -> list[int | None]:
    return [r["duration_ms"] if r["outcome"] != RUNNING else elapsed_ms(r["started_at"], now) for r in runs]


def chart_top(runs: list[dict[str, Any]], now: int, usual_ms: float | None) -> int:
    """The duration a chart draws at full height: the longest, but at most 4x the usual (one stuck run does not
    flatten the rest)."""
    top = max((d for d in _durations(runs, now) if isinstance(d, int)), default=0)
    if usual_ms:
        top = min(top, int(usual_ms * 4)) or top
    return top


def _draw(runs: list[dict[str, Any]], width: float, height: float, now: int, usual_ms: float | None, link: bool,
          gap: float, slots: int, scale_ms: int | None = None) -> Markup:
    durations = _durations(runs, now)
    top = scale_ms if scale_ms else chart_top(runs, now, usual_ms)
    step = width / max(len(runs), slots)
    w = max(step - gap, 0.5)
    slow_above = SLOW_FACTOR * usual_ms if usual_ms else None
    parts = []
    for i, run in enumerate(runs):
        found = durations[i]
        value = found if isinstance(found, int) else 0
        h = max(1.0, height * min(value, top) / top) if top else 1.0
        outcome = run["outcome"]
        slow = slow_above is not None and outcome != RUNNING and value > slow_above
        title = escape(f"run {run['id']}: {outcome}, {duration(value)}, {local(run['started_at'])}")
        rect = (f'<rect class="bar {outcome if outcome in _CLASSES else "other"}{" slow" if slow else ""}" '
                f'x="{i * step + gap / 2:.1f}" y="{height - h:.1f}" width="{w:.1f}" height="{h:.1f}">'
                f'<title>{title}{" — slow" if slow else ""}</title></rect>')
        parts.append(f'<a href="/run/{int(run["id"])}">{rect}</a>' if link else rect)
    return Markup("".join(parts))


# The duration axis's steps, in the units people read: a step is the smallest of these giving at most
# AXIS_TICKS intervals up to the chart's top (so 3 to 5 labelled ticks, 0 among them).
AXIS_STEPS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000,
                 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000,
                 86_400_000, 172_800_000, 432_000_000, 864_000_000)
AXIS_TICKS = 4
_UNITS = ((86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1000, "s"), (1, "ms"))


def tick_label(ms: int) -> str:
    """`0`, `500 ms`, `15 s`, `2 min`, `1.5 h`: an axis tick in the largest unit it is a whole or half of."""
    if ms == 0:
        return "0"
    for unit, name in _UNITS:
        if ms >= unit and (ms * 2) % unit == 0:
            value = ms / unit
            return f"{value:g} {name}"
    return duration(ms)


def duration_ticks(top_ms: int) -> list[int]:
    """The duration axis's ticks, from 0 to a round top at or above `top_ms`: 3 to 5 of them."""
    top_ms = max(int(top_ms), 1)
    step = next((s for s in AXIS_STEPS_MS if -(-top_ms // s) <= AXIS_TICKS), None)
    if step is None:  # more than 40 days: whole days
        step = -(-top_ms // (AXIS_TICKS * 86_400_000)) * 86_400_000
    count = max(2, -(-top_ms // step))
    return [i * step for i in range(count + 1)]


AXIS_LABEL_WIDTH = 170.0  # room for one x label ("2026-12-06 18:42 UTC" at 12px), in the chart's units


def axes(runs: list[dict[str, Any]], width: float, height: float, now: int, usual_ms: float | None,
         tz_name: str, slots: int = 0) -> dict[str, Any]:
    """A history chart's axes (runs oldest first, drawn as `chart` draws them with `slots`): the y ticks (duration,
    `tick_label`) at their heights, the top duration the bars are scaled to, and the x labels: the first and the
    last run's start in `tz_name`, each under its bar (`last_x`: the last bar's right edge; the last label ends
    there, or, when the bars leave no room for two labels, starts after the first: `last_label_x`, `last_anchor`)."""
    ticks = duration_ticks(chart_top(runs, now, usual_ms))
    longest = max((d for d in _durations(runs, now) if isinstance(d, int)), default=None)
    last_x = width / max(len(runs), slots, 1) * len(runs)
    top = ticks[-1]
    first, last = (to_ms(runs[0]["started_at"]), to_ms(runs[-1]["started_at"])) if runs else (None, None)
    return {
        "top_ms": top,
        "y": [{"ms": t, "label": tick_label(t), "y": round(height - height * t / top, 1)} for t in ticks],
        "first": axis_time(first, tz_name), "last": axis_time(last, tz_name),
        "first_iso": runs[0]["started_at"] if runs else None, "last_iso": runs[-1]["started_at"] if runs else None,
        "longest": duration(longest), "clipped": longest is not None and longest > top,
        "last_x": round(last_x, 1),
        "last_label_x": round(last_x, 1) if last_x >= 2 * AXIS_LABEL_WIDTH else AXIS_LABEL_WIDTH,
        "last_anchor": "end" if last_x >= 2 * AXIS_LABEL_WIDTH else "start",
    }


def axis_time(ms: int | None, tz_name: str) -> str:
    """`2026-12-06 18:00 UTC`: a run's start on a chart's time axis."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone(tz_name)).strftime("%Y-%m-%d %H:%M %Z")


# -- a run's crash ------------------------------------------------------------------------------------------
def crash_panel(run: dict[str, Any], crash_rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What the crash panel shows, or None for a run that did not crash and was not reaped."""
    info = summary(run)
    reaped = bool(run.get("reaped_at")) or run.get("ended_by") == "reaper"
    crashed = bool(info.get("crash")) or reaped or (run.get("outcome") == FAILURE and bool(crash_rows))
    if not crashed and not crash_rows:
        return None
    kind = str(info.get("kind") or ("lost" if reaped else "")) or None
    if info.get("timeout"):
        kind = "timeout"
    row = crash_rows[-1] if crash_rows else None
    # A crash row's error_stack holds the traceback, then the process's last log lines (logring): shown apart.
    parts = [(r, *split_stack(r.get("error_stack"))) for r in crash_rows]
    exit_code = run.get("exit_code") if run.get("exit_code") is not None else info.get("exit_code")
    if reaped:
        at = local(info.get("detected_at") or run.get("reaped_at"))
        detected = f"{info.get('detected_by') or 'the reaper'}, at {at}"
    elif "command" in info:
        detected = f"runtracker exec, when the command ended ({local(run.get('finished_at'))})"
    elif crash_rows and not crashed:
        detected = "the run's own process (a thread or task died; the run went on)"
    else:
        detected = f"the run's own process, as it died ({local(run.get('finished_at'))})"
    return {
        "kind": kind or "crash",
        "kind_label": CRASH_KINDS.get(kind or "", kind or "crash"),
        "message": info.get("error") or (row["error_message"] if row else None),
        "signal": info.get("signal"),
        "exit_code": exit_code,
        "stack": split_stack(row["error_stack"])[0] if row else None,
        "stacks": [{**r, "error_stack": stack} for r, stack, _ in parts if stack],
        "log_lines": [{**r, "log_lines": lines} for r, _, lines in parts if lines],
        "step_in_progress": info.get("step_in_progress"),
        "detected": detected,
        "reap_reason": run.get("reap_reason"),
        "reaped_at": run.get("reaped_at"),
        "last_heartbeat_at": info.get("last_heartbeat_at") or run.get("heartbeat_at"),
        "rows": crash_rows,
        "went_on": bool(crash_rows) and not crashed,
        "outcome": run.get("outcome"),
        "partial": run.get("outcome") == PARTIAL,
    }


# -- a run's heartbeat, and a lost run's end ------------------------------------------------------------------
def heartbeat(run: dict[str, Any], now: int, interval_s: float, timeout_s: float) -> dict[str, Any] | None:
    """A running run's last heartbeat as its page shows it: how long ago, and whether it is late (the rule is
    `status.heartbeat_late_s`); None for a run that has ended or records no heartbeat."""
    at = to_ms(run.get("heartbeat_at"))
    if run.get("outcome") != RUNNING or at is None:
        return None
    age_s = max(0, now - at) / 1000
    late = heartbeat_late_s(run, now, interval_s, timeout_s)
    return {"ago": f"{age_s:.0f} s ago" if age_s < 60 else ago(run["heartbeat_at"], now), "late": late is not None,
            "interval": duration(int(interval_s * 1000)), "timeout": duration(int(timeout_s * 1000)),
            "past_timeout": late is not None and late > timeout_s}


def lost_end(run: dict[str, Any]) -> dict[str, Any] | None:
    """How a lost run's end is known, as its page says it: seen as its process died, or estimated (from what,
    and when it was found dead: the death lies in between). None for a run the reaper did not end."""
    info = summary(run)
    if run.get("ended_by") != "reaper" or info.get("kind") != LOST:
        return None
    found = info.get("detected_at") or run.get("reaped_at")
    who = info.get("detected_by") or "the reaper"
    if info.get("end") == END_OBSERVED:
        return {"estimated": False, "text": f"when its process died, seen by {who} as it happened "
                                            f"(alive at {info.get('alive_at')})"}
    source = ESTIMATED_FROM.get(str(info.get("estimated_from")), "its last sign of life")
    return {"estimated": True, "text": f"estimated from {source} at {run.get('finished_at')}: nobody saw it die; "
                                       f"{who} found it dead at {info.get('dead_by') or found}"}


def timeline(run: dict[str, Any], steps: list[dict[str, Any]], now: int, width: float = 600.0) -> dict[str, Any]:
    """Each step as a bar from its start to its end, on the run's own time axis."""
    start = to_ms(run.get("started_at"))
    end = to_ms(run.get("finished_at")) or now
    if start is None or not steps:
        return {"bars": [], "width": width, "height": 0}
    span = max(end - start, 1)
    found = []
    for i, step in enumerate(steps):
        s = to_ms(step.get("started_at")) or start
        e = to_ms(step.get("finished_at")) or end
        x = max(0.0, (s - start) / span * width)
        w = max(2.0, (max(e, s) - s) / span * width)
        found.append({"x": round(x, 2), "y": i * 22 + 2, "w": round(min(w, width - x) or 2.0, 2),
                      "outcome": step.get("outcome") or RUNNING, "name": step.get("step_name"),
                      "title": f"{step.get('step_name')}: {local(step.get('started_at'))} – "
                               f"{local(step.get('finished_at')) if step.get('finished_at') else 'open'} "
                               f"({duration(step.get('duration_ms'))})"})
    return {"bars": found, "width": width, "height": len(steps) * 22 + 4}


# A page shows stored JSON indented down to JSON_DEPTH levels (deeper values on one line, cut at JSON_LINE
# characters) and JSON_CHARS characters in all: a 59 KB summary nested 200 deep was a 12 MB page, indented in
# full. The whole JSON is one link away, as stored (`/run/<id>/summary.json`).
JSON_DEPTH = 8
JSON_LINE = 200
JSON_CHARS = 50_000


class ShownJson:
    """Stored JSON as a page shows it: `text`, and `cut` when parts of it were left out."""

    __slots__ = ("text", "cut")

    def __init__(self, text: str, cut: bool) -> None:
        self.text = text
        self.cut = cut


def pretty_json(text: object) -> ShownJson | None:
    """Stored JSON indented within JSON_DEPTH and JSON_CHARS; the stored text (cut) when it is not JSON."""
    if not text:
        return None
    raw = str(text)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return ShownJson(raw[:JSON_CHARS], len(raw) > JSON_CHARS)
    lines: list[str] = []
    budget = [JSON_CHARS]
    cut = _indented(value, 0, "", lines, budget)
    return ShownJson("\n".join(lines), cut)


def _one_line(value: Any) -> tuple[str, bool]:
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (ValueError, RecursionError):
        return "…", True
    return (text, False) if len(text) <= JSON_LINE else (text[:JSON_LINE] + "…", True)


def _indented(value: Any, depth: int, prefix: str, lines: list[str], budget: list[int]) -> bool:
    """Append `value`'s lines (the first after `prefix`); True if something was left out. Stops once `budget`
    characters are spent: the work is bounded as the output is."""
    pad = "  " * depth
    if budget[0] <= 0:
        return True
    if not isinstance(value, dict | list) or not value or depth >= JSON_DEPTH:
        text, cut = _one_line(value)
        lines.append(pad + prefix + text)
        budget[0] -= len(lines[-1])
        return cut
    items = sorted(value.items()) if isinstance(value, dict) else list(enumerate(value))
    opener, closer = ("{", "}") if isinstance(value, dict) else ("[", "]")
    lines.append(pad + prefix + opener)
    budget[0] -= len(lines[-1])
    cut = False
    for i, (key, item) in enumerate(items):
        if budget[0] <= 0:
            lines.append(pad + "  …")
            cut = True
            break
        label = json.dumps(key, ensure_ascii=False) + ": " if isinstance(value, dict) else ""
        cut = _indented(item, depth + 1, label, lines, budget) or cut
        if i < len(items) - 1:
            lines[-1] += ","
    lines.append(pad + closer)
    return cut
