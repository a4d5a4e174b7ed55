"""The runs page, `/runs`: every pipeline's runs started in a time window ("last night": since 18:00 yesterday in
the display time zone, unless `from`/`to` say otherwise), by outcome and pipeline, newest first, a page at a time
by key (`before=<run id>`), with each outcome's count for the window at the top.

Its reads are `Dashboard.list_runs` (the same query as `/api/runs`) and `Dashboard.outcome_counts`, each served
by an index (`tests/web/test_query_plans.py`): a window of a year costs what a night costs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..base.clock import iso, now_ms, to_ms
from ..base.outcomes import FAILURE, PARTIAL, RUNNING, SUCCESS
from ..base.schedule import to_instant, zone
from ..storage.dashboard import LOST
from . import present
from .core import COUNT_CAP, BadRequest, Web, page, run_cursor, text_param, url

RUNS_PER_PAGE = 50
EVENING_HOUR = 18  # "last night" starts at 18:00 yesterday, in the display time zone
# The outcomes the page filters by, in the order its counts are shown: the worst first. `lost` is a run the
# reaper ended (its process was gone): a failure, counted apart as well.
OUTCOMES = (FAILURE, LOST, PARTIAL, RUNNING, SUCCESS)
_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


def display_zone(web: Web, request: Request) -> str:
    """The time zone the page's window is read and shown in: the page's display zone (the user's, else the
    browser's, else the configured one; `present.display_zone`, set for each request)."""
    return present.display_zone().name


class Window:
    """The runs page's window: [`since`, `until`) as stored text (`until` None: up to now), the same as people
    read it in the display zone (`since_text`, `until_text`), and whether it is the default (last night)."""

    __slots__ = ("since", "until", "since_text", "until_text", "default", "zone")

    def __init__(self, since_ms: int, until_ms: int | None, tz_name: str, default: bool) -> None:
        tz = zone(tz_name)
        self.since = iso(since_ms)
        self.until = iso(until_ms) if until_ms is not None else None
        self.since_text = _wall_text(since_ms, tz)
        self.until_text = _wall_text(until_ms, tz) if until_ms is not None else None
        self.default = default
        self.zone = tz_name


def _wall_text(ms: int, tz: Any) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z")


def last_night(now: int, tz_name: str) -> int:
    """18:00 yesterday in the zone `tz_name`, as ms since the epoch."""
    tz = zone(tz_name)
    today = datetime.fromtimestamp(now / 1000, UTC).astimezone(tz).date()
    evening = datetime.combine(today - timedelta(days=1), datetime.min.time()).replace(hour=EVENING_HOUR)
    return to_instant(evening, tz)


def moment(values: Any, name: str, tz_name: str, *, end: bool = False) -> int | None:
    """`from`/`to` as given (`2026-12-06`, `2026-12-06T18:00`, as a datetime-local field sends it), a wall-clock
    time in the display zone; as an end, a date alone includes that whole day."""
    given = text_param(values, name)
    if given is None:
        return None
    for fmt in _FORMATS:
        try:
            wall = datetime.strptime(given, fmt)
        except ValueError:
            continue
        if end and fmt == "%Y-%m-%d":
            wall += timedelta(days=1)
        return to_instant(wall, zone(tz_name))
    raise BadRequest(f"`{name}` must be a date (2026-12-06) or a date and time (2026-12-06T18:00), in {tz_name}")


def window_of(values: Any, tz_name: str, now: int) -> Window:
    since = moment(values, "from", tz_name)
    until = moment(values, "to", tz_name, end=True)
    window = Window(since if since is not None else last_night(now, tz_name), until, tz_name, since is None)
    if window.until is not None and window.until <= window.since:
        raise BadRequest(f"`to` ({window.until_text}) must be after `from` ({window.since_text})")
    return window


@page
def runs_page(request: Request, web: Web, user: dict[str, Any]) -> Response:
    params = request.query_params
    now = now_ms()
    window = window_of(params, display_zone(web, request), now)
    outcome = text_param(params, "outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise BadRequest(f"`outcome` is one of {', '.join(OUTCOMES)}")
    pipeline = text_param(params, "pipeline")
    before = run_cursor(web, params)
    rows = web.dash.list_runs(pipeline=pipeline, outcome=None if outcome in (None, LOST) else outcome,
                              lost=outcome == LOST, since=window.since, until=window.until,
                              limit=RUNS_PER_PAGE + 1, before=before)
    more = len(rows) > RUNS_PER_PAGE
    rows = rows[:RUNS_PER_PAGE]
    kept = {k: v for k in ("from", "to", "pipeline") if (v := str(params.get(k) or "").strip())}
    counts = web.dash.outcome_counts(window.since, window.until, pipeline, COUNT_CAP)
    return web.render(request, "runs.html", {
        "runs": rows, "window": window, "outcome": outcome, "pipeline": pipeline, "params": kept,
        "outcome_counts": [{"outcome": o, "count": counts.get(o, 0), "url": url("/runs", **kept, outcome=o),
                    "current": o == outcome} for o in OUTCOMES],
        "count_cap": COUNT_CAP,
        "all_url": url("/runs", **kept), "outcomes": OUTCOMES,
        "pipelines": sorted(set(web.dash.pipeline_names()) | set(web.config().pipelines)),
        "from_value": str(params.get("from") or "").strip(), "to_value": str(params.get("to") or "").strip(),
        "older": url("/runs", **kept, outcome=outcome, before=rows[-1]["id"]) if more and rows else None,
        "newest": url("/runs", **kept, outcome=outcome) if before is not None else None,
        "elapsed": {r["id"]: now - (to_ms(r["started_at"]) or now) for r in rows if r["outcome"] == RUNNING},
        "now": now,
    }, user=user)
