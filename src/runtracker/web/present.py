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
import statistics
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from ..base.clock import now_ms, to_ms
from ..base.outcomes import FAILURE, PARTIAL, RUNNING, SUCCESS
from ..base.schedule import local_time
from ..base.status import PipelineStatus, heartbeat_late_s
from ..core.ending import END_OBSERVED, ESTIMATED_FROM, LOST
from ..core.logring import split_stack

NEVER_RAN = "never ran"
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


def short_duration(ms: int) -> str:
    """`8m`, `45s`, `2h`: for ranges."""
    seconds = ms // 1000
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{round(seconds / 60)}m"
    return f"{seconds / 3600:.1f}h".replace(".0h", "h")


def ago(moment: object, now: int | None = None) -> str:
    """`just now`, `5 min ago`, `3 h ago`, `2 days ago`; the text itself when it is not a time."""
    at = to_ms(moment)
    if at is None:
        return str(moment or "–")
    delta = ((now_ms() if now is None else now) - at) // 1000
    if delta < 0:
        return "in the future"
    if delta < 45:
        return "just now"
    if delta < 3600:
        return f"{max(1, round(delta / 60))} min ago"
    if delta < 86400 * 2:
        return f"{round(delta / 3600)} h ago"
    return f"{round(delta / 86400)} days ago"


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
            running_line += f" — the last {len(usual_durations)} successful runs took {took}"
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


def schedule(status: PipelineStatus, timezone: str, now: int) -> dict[str, Any]:
    """A card's lines about its schedule, times in the pipeline's time zone: "Overdue since today 07:00 CEST",
    "Next: tomorrow 07:00 CEST" (None without one), and the ids of its runs running too long."""
    overdue, following = status.overdue_since_ms, status.next_due_ms
    return {
        "overdue_text": f"Overdue since {local_time(overdue, timezone, now)}" if overdue is not None else None,
        "next_text": f"Next: {local_time(following, timezone, now)}" if following is not None else None,
        "too_long": status.too_long,
    }


_CLASSES = frozenset((SUCCESS, PARTIAL, FAILURE, RUNNING))


def chart(runs: list[dict[str, Any]], width: float, height: float, now: int, usual_ms: float | None = None,
          link: bool = False, gap: float = 1.0, slots: int = 0) -> Markup:
    """Runs (oldest first) as SVG bars: height by duration against the longest (capped at 4x the usual
    duration, so one stuck run does not flatten the rest), class by outcome (and `slow`), a `<title>` each, and
    with `link` a link to the run's page; room for at least `slots` bars (a few runs are not drawn as walls).
    The title holds text from the database and is escaped; everything else is a number or one of our class
    names. One loop, no template: the overview draws 360 bars."""
    if not runs:
        return Markup("")
    if all(r["outcome"] != RUNNING for r in runs):
        # The same finished runs draw the same bars: the overview, refreshed every minute by everyone, mostly
        # redraws what it drew before. (A running run's bar grows: it is drawn anew.)
        key = tuple((r["id"], r["outcome"], r["duration_ms"], r["started_at"]) for r in runs)
        return _chart_of_finished(key, width, height, usual_ms, link, gap, slots)
    return _draw(runs, width, height, now, usual_ms, link, gap, slots)


@functools.lru_cache(maxsize=4096)
def _chart_of_finished(key: tuple[tuple[Any, ...], ...], width: float, height: float, usual_ms: float | None,
                       link: bool, gap: float, slots: int) -> Markup:
    runs = [{"id": i, "outcome": o, "duration_ms": d, "started_at": s} for i, o, d, s in key]
    return _draw(runs, width, height, 0, usual_ms, link, gap, slots)


def _draw(runs: list[dict[str, Any]], width: float, height: float, now: int, usual_ms: float | None, link: bool,
          gap: float, slots: int) -> Markup:
    durations = [r["duration_ms"] if r["outcome"] != RUNNING else elapsed_ms(r["started_at"], now) for r in runs]
    top = max((d for d in durations if isinstance(d, int)), default=0)
    if usual_ms:
        top = min(top, int(usual_ms * 4)) or top
    step = width / max(len(runs), slots)
    w = max(step - gap, 0.5)
    slow_above = SLOW_FACTOR * usual_ms if usual_ms else None
    parts = []
    for i, run in enumerate(runs):
        value = durations[i] if isinstance(durations[i], int) else 0
        h = max(1.0, height * min(value, top) / top) if top else 1.0
        outcome = run["outcome"]
        slow = slow_above is not None and outcome != RUNNING and value > slow_above
        title = escape(f"run {run['id']}: {outcome}, {duration(value)}, {run['started_at']}")
        rect = (f'<rect class="bar {outcome if outcome in _CLASSES else "other"}{" slow" if slow else ""}" '
                f'x="{i * step + gap / 2:.1f}" y="{height - h:.1f}" width="{w:.1f}" height="{h:.1f}">'
                f'<title>{title}{" — slow" if slow else ""}</title></rect>')
        parts.append(f'<a href="/run/{int(run["id"])}">{rect}</a>' if link else rect)
    return Markup("".join(parts))


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
        detected = f"{info.get('detected_by') or 'the reaper'}, at {info.get('detected_at') or run.get('reaped_at')}"
    elif "command" in info:
        detected = f"runtracker exec, when the command ended ({run.get('finished_at')})"
    elif crash_rows and not crashed:
        detected = "the run's own process (a thread or task died; the run went on)"
    else:
        detected = f"the run's own process, as it died ({run.get('finished_at')})"
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
                      "title": f"{step.get('step_name')}: {step.get('started_at')} – "
                               f"{step.get('finished_at') or 'open'} ({duration(step.get('duration_ms'))})"})
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
