"""The JSON API under /api/ (read-only, plus starting a pipeline), /health and /metrics.

Authentication: an API key (`Authorization: Bearer KEY` or `X-API-Key: KEY`; `runtracker user key-add`), or
the dashboard's session. A POST with the session also needs its CSRF token (header X-CSRF-Token); a POST with
an API key does not: a browser never sends the key by itself. Starting a pipeline runs a command on the server:
a key needs the permission for that pipeline (`key-add --start PIPELINE`); every dashboard user has it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..base.clock import iso, now_ms
from ..base.outcomes import RUN_OUTCOMES
from ..storage.auth import START
from . import alert_history, grouping, metrics, present, start
from .core import (
    DEFAULT_GROUP_WINDOW,
    ERRORS_PER_PAGE,
    GROUP_WINDOWS,
    BadRequest,
    Principal,
    Web,
    api_error,
    cursor_text,
    error_cursor,
    error_filter,
    int_param,
    run_cursor,
    text_param,
    web_of,
)
from .views import cards

MAX_API_LIMIT = 500

Endpoint = Callable[[Request, Web, Principal], Response]


def api(fn: Endpoint) -> Callable[[Request], Response]:
    """An API endpoint: 401 without a valid key or session, 400 for a bad parameter."""

    @functools.wraps(fn)
    def endpoint(request: Request) -> Response:
        web = web_of(request)
        who = web.principal(request)
        if who is None:
            return api_error(401, "an API key (Authorization: Bearer KEY) or a dashboard login is required")
        try:
            return fn(request, web, who)
        except BadRequest as exc:
            return api_error(400, str(exc))

    return endpoint


def _limit(request: Request, default: int) -> int:
    return int_param(request.query_params, "limit", 1, MAX_API_LIMIT) or default


@api
def pipelines(request: Request, web: Web, who: Principal) -> Response:
    found = []
    for card in cards(web):
        latest, status = card["latest"], card["pipeline_status"]
        found.append({
            "name": card["name"], "display_name": card["display_name"], "description": card["description"],
            "state": card["state"], "why": card["why"], "status": card["status"], "latest_run": latest,
            "running_run": card["running"], "running": card["running_line"],
            "success_rate_percent": card["success_rate"], "recent_finished": card["finished"],
            "recent_successes": card["successes"],
            "can_start": card["command"] and card["running"] is None and who.may(START, card["name"]),
            "overdue_since": _iso(status.overdue_since_ms), "next_due": _iso(status.next_due_ms),
            "runs_too_long": status.too_long, "runs_heartbeat_late": status.late_heartbeat,
        })
    return JSONResponse({"pipelines": found})


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso(ms)


@api
def runs(request: Request, web: Web, who: Principal) -> Response:
    params = request.query_params
    outcome = text_param(params, "outcome")
    if outcome is not None and outcome not in RUN_OUTCOMES:
        raise BadRequest(f"`outcome` is one of {', '.join(RUN_OUTCOMES)}")
    before = run_cursor(web, params)
    limit = _limit(request, 50)
    rows = web.dash.list_runs(pipeline=text_param(params, "pipeline"), outcome=outcome, limit=limit + 1,
                              before=before)
    more = len(rows) > limit
    rows = rows[:limit]
    return JSONResponse({"runs": rows, "next_before": rows[-1]["id"] if more else None})


@api
def run(request: Request, web: Web, who: Principal) -> Response:
    run_id = request.path_params["run_id"]
    row = web.dash.run(run_id)
    if row is None:
        return api_error(404, f"there is no run {run_id}")
    crash_rows = web.dash.crash_rows(run_id)
    errors = web.dash.run_errors(run_id, 1000)
    return JSONResponse({"run": row, "steps": web.dash.steps(run_id), "errors": errors,
                         "errors_truncated": len(errors) == 1000, "crash": present.crash_panel(row, crash_rows)})


@api
def errors(request: Request, web: Web, who: Principal) -> Response:
    flt = error_filter(request.query_params)
    page = web.search.errors(flt, _limit(request, ERRORS_PER_PAGE), error_cursor(request.query_params))
    return JSONResponse({"errors": page.rows, "next_after": cursor_text(page.next),
                         "searched_back_to": page.window_end})


@api
def error_groups(request: Request, web: Web, who: Principal) -> Response:
    flt = error_filter(request.query_params)
    window = int_param(request.query_params, "window", 1, max(GROUP_WINDOWS)) or DEFAULT_GROUP_WINDOW
    if window not in GROUP_WINDOWS:
        raise BadRequest(f"`window` is one of {', '.join(str(w) for w in GROUP_WINDOWS)}")
    rows = web.search.error_window(flt, window)
    return JSONResponse({"window": window, "errors_grouped": len(rows),
                         "groups": [g.as_json() for g in grouping.group(rows)]})


@api
def alerts(request: Request, web: Web, who: Principal) -> Response:
    """The alert history (docs/dashboard.md): filters pipeline, event, state; cursor `before`."""
    limit = _limit(request, alert_history.ALERTS_PER_PAGE)
    return JSONResponse(alert_history.api_page(request.query_params, web, limit))


async def start_pipeline(request: Request) -> Response:
    web = web_of(request)
    who = await run_in_threadpool(web.principal, request)
    if who is None:
        return api_error(401, "an API key (Authorization: Bearer KEY) or a dashboard login is required")
    if not who.via_key and not web.sessions.csrf_ok(request, None):
        return api_error(403, "the X-CSRF-Token header is missing or wrong")
    name = request.path_params["name"]
    if not who.may(START, name):
        allowed = who.permissions.patterns(START)
        return api_error(403, f"this API key may not start {name!r} (it may start "
                              f"{', '.join(allowed) if allowed else 'no pipeline'}: runtracker user key-add --start)")
    result = await run_in_threadpool(start.start, web.dash, web.config(), name, who.started_by, web.settings.db,
                                   web.settings.pass_env)
    if result.status == "not_configured":
        return api_error(404, f"the pipeline {name!r} has no command in the config file")
    if result.status == "running":
        return JSONResponse({"error": "the pipeline is running already", **result.as_json()}, status_code=409)
    return JSONResponse({"pipeline": name, "started_by": who.started_by, **result.as_json()}, status_code=202)


def health(request: Request) -> Response:
    """No login: whether the database answers, how many runs are running, the schema version."""
    web = web_of(request)
    try:
        facts = web.dash.health()
    except Exception as exc:
        return JSONResponse({"status": "error", "database": "unreachable", "error": type(exc).__name__},
                            status_code=503)
    problem = web.store.disk_problem()
    if problem is not None:  # reads answer, writes cannot: what a probe should alert on
        return JSONResponse({"status": "error", "database": "disk full", "error": problem, **facts,
                             "time": iso(now_ms())}, status_code=503)
    return JSONResponse({"status": "ok", "database": "reachable", **facts, "time": iso(now_ms())})


@api
def metrics_page(request: Request, web: Web, who: Principal) -> Response:
    body, content_type = metrics.exposition(web.dash, sorted(web.config().pipelines), web.statuses)
    return Response(body, media_type=content_type)

