"""The pages: overview, a pipeline's history, a run, the error browser (flat and grouped), one member's errors,
login and logout, the Start button and "clear errors"."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..base.clock import now_ms
from ..base.outcomes import CRASH_STEP, FAILURE, PARTIAL, RUNNING, SUCCESS
from ..base.status import FAILING, OK, OVERDUE, RUNNING_STATE, STATES
from ..settings.values import heartbeat_interval_s, heartbeat_timeout_s
from ..storage.dashboard import LOST, RUN_BAR_COLUMNS, Dashboard
from ..storage.errorfilter import BY_PIPELINE, ErrorFilter
from . import alert_history, grouping, present, runlist, start
from .bodies import LOGIN_FORM_BYTES, BodyRefused, read_form
from .core import (
    COUNT_CAP,
    DEFAULT_GROUP_WINDOW,
    ERRORS_PER_PAGE,
    GROUP_WINDOWS,
    PAGE_SIZE,
    BadRequest,
    Web,
    csrf_refused,
    cursor_text,
    error_cursor,
    error_filter,
    filter_params,
    form_post,
    int_param,
    page,
    path_quote,
    safe_next,
    text_param,
    url,
    web_of,
)
from .sessions import CSRF_FIELD

NOT_FOUND = "Not found"
CHART_RUNS = 100  # the history's duration chart: the runs up to the page's newest
CHART_WIDTH, CHART_HEIGHT = 800.0, 160.0  # its bars' area, in the SVG's units (the axes' labels are around it)


def not_found(request: Request, web: Web, user: dict[str, Any] | None, message: str) -> Response:
    return web.render(request, "message.html", {"title": NOT_FOUND, "message": message}, 404, user)


# -- login ------------------------------------------------------------------------------------------------
def login_page(request: Request) -> Response:
    web = web_of(request)
    if web.user(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return web.render(request, "login.html", {"next": safe_next(request.query_params.get("next")), "error": None})


async def login_post(request: Request) -> Response:
    web = web_of(request)
    client = request.client.host if request.client else "unknown"
    wait = web.login_limit.hit(client)
    if wait is not None:
        response = web.render(request, "login.html", {
            "next": "/", "error": f"Too many login attempts: try again in {int(wait) + 1} s."}, 429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    try:
        form = await read_form(request, LOGIN_FORM_BYTES)
    except BodyRefused as refused:
        return web.render(request, "login.html", {"next": "/", "error": f"Refused: {refused.message}."},
                          refused.status)
    target = safe_next(form.get("next"))
    if not web.sessions.csrf_ok(request, form.get(CSRF_FIELD)):
        return csrf_refused(web, request, None)
    name, password = str(form.get("username", "")), str(form.get("password", ""))
    row = await run_in_threadpool(web.login, name, password) if name and password else None
    if row is None:
        return web.render(request, "login.html", {"next": target, "error": "Wrong user name or password."}, 401)
    web.login_limit.forgive(client)  # only failures count against the limit
    await run_in_threadpool(web.open_session, request, row)
    return web.sessions.save(request, RedirectResponse(target, status_code=303))


@form_post
async def logout(request: Request, web: Web, user: dict[str, Any], form: FormData) -> Response:
    await run_in_threadpool(web.end_session, request)
    return web.sessions.save(request, RedirectResponse("/login", status_code=303))


# -- the overview -------------------------------------------------------------------------------------------
VIEWS = ("cards", "list")  # the overview's two views: cards, or a compact list of one line each
VIEW_COOKIE = "rt_overview_view"  # the view chosen last (`?view=`), remembered by the browser
ORDERS = ("state", "name")  # most urgent state first (then by name), or by name only
FAST_REFRESH_S = 5  # the overview refreshes itself this often while a pipeline is running (app.js), else 60 s
SEARCH_CHARS = 200
STATE_RANK = {state: rank for rank, state in enumerate(STATES)}


@page
def overview(request: Request, web: Web, user: dict[str, Any]) -> Response:
    """Every pipeline's state at a glance: the summary line (a count per state, each a link that filters), the
    cards or the compact list, most urgent first; filtered by `state`, searched by `q` (display name and name,
    case and accents ignored). Works without JavaScript: every choice is a link or a GET form."""
    params = request.query_params
    state = params.get("state") or None
    if state is not None and state not in STATES:
        raise BadRequest(f"`state` is one of: {', '.join(STATES)}")
    order = params.get("order") or ORDERS[0]
    if order not in ORDERS:
        raise BadRequest(f"`order` is one of: {', '.join(ORDERS)}")
    search = (params.get("q") or "").strip()[:SEARCH_CHARS]
    chosen = params.get("view")
    view = chosen if chosen in VIEWS else request.cookies.get(VIEW_COOKIE)
    view = view if view in VIEWS else VIEWS[0]
    return web.render_kept(request, "overview.html", lambda: _overview(web, state, order, search, view), user,
                           set_cookie=(VIEW_COOKIE, chosen) if chosen in VIEWS else None)


def _overview(web: Web, state: str | None, order: str, search: str, view: str) -> dict[str, Any]:
    """The overview's page: every card counted by state, those shown in their order, and the links."""
    every = cards(web)
    counts = dict.fromkeys(STATES, 0)
    for found in every:
        counts[found["state"]] += 1
    shown = [c for c in every if (state is None or c["state"] == state)
             and (not search or present.matches(search, c["title"], c["name"]))]
    if order == "state":
        shown.sort(key=lambda c: STATE_RANK[c["state"]])  # stable: by name within a state

    def link(**changes: object) -> str:
        """This overview's URL with some of its choices changed (None: left out)."""
        current: dict[str, object] = {"state": state, "q": search, "order": None if order == ORDERS[0] else order}
        current.update(changes)
        return url("/", **{k: v for k, v in current.items() if v is not None})

    return {
        "cards": shown, "total": len(every), "state_counts": counts, "states": STATES, "state": state,
        "search": search, "order": order, "view": view, "link": link,
        "fast_refresh": FAST_REFRESH_S if any(c["running"] for c in every) else None,
        # The summary names these four whatever their count (none failing is news too); the others when any.
        "always_counted": (FAILING, OVERDUE, RUNNING_STATE, OK),
    }


def cards(web: Web) -> list[dict[str, Any]]:
    """A card per pipeline: those with runs, and those the config file names; in the order people sort names
    (`present.name_key`: of the name shown, the display name if it has one)."""
    config = web.config()
    configured = tuple(sorted(config.pipelines))
    rows = web.dash.unchanged(("overview", configured), lambda: _OverviewRows(web.dash, configured))
    now = now_ms()
    statuses = web.statuses(rows.names, rows.latest, rows.running_rows, now)
    found = []
    for name in rows.names:
        status = statuses[name]
        card = present.card(name, rows.latest[name], rows.recent[name], status.oldest_running,
                            rows.usual.get(name, []), start.command_of(config, name) is not None, now)
        # "Overdue since today 07:00 CEST", "Next: tomorrow 07:00 CEST" (the display zone), the runs too long
        card["schedule"] = present.schedule(status, now) if status.watched else None
        card["pipeline_status"] = status
        card["state"] = status.state
        own = config.pipelines.get(name)
        card["display_name"] = own.display_name if own is not None else None
        card["description"] = own.description if own is not None else None
        card["title"] = card["display_name"] or name
        card["why"] = rows.why.get(card["shown"]["id"]) if card["shown"] else None
        found.append(card)
    found.sort(key=lambda c: (present.name_key(c["title"]), present.name_key(c["name"])))
    return found


class _OverviewRows:
    """What the overview reads, kept while the database does not change (`Dashboard.unchanged`): read-only."""

    __slots__ = ("names", "recent", "latest", "running_rows", "usual", "why")

    def __init__(self, dash: Dashboard, configured: tuple[str, ...]) -> None:
        self.names = sorted(set(dash.pipeline_names()) | set(configured))
        self.recent = dash.latest_runs(self.names, present.RECENT_RUNS, columns=RUN_BAR_COLUMNS)
        self.latest = dash.latest_runs(self.names, 2)
        self.running_rows = dash.running_runs()  # oldest first
        # The running pipelines' latest successful durations: one statement for all of them, not one each.
        running = list(dict.fromkeys(row["pipeline"] for row in self.running_rows))
        successes = dash.latest_runs(running, present.USUAL_RUNS, outcome=SUCCESS,
                                     columns="id, pipeline, started_at, duration_ms") if running else {}
        self.usual = {name: [int(r["duration_ms"]) for r in rows if r["duration_ms"] is not None]
                      for name, rows in successes.items()}
        # Why each pipeline's latest finished run failed (or ended partial), by run id: read for all at once.
        ended = [next((r for r in rows if r["outcome"] != RUNNING), None) for rows in self.latest.values()]
        failed = {int(r["id"]): r for r in ended if r is not None and r["outcome"] in (FAILURE, PARTIAL)}
        details = dash.why_failed(list(failed))
        self.why = {run_id: present.why_failed(run, details.get(run_id)) for run_id, run in failed.items()}


# -- a pipeline's history -------------------------------------------------------------------------------------
class History:
    """A pipeline's runs, all of them or of one outcome (`lost`: the ones the reaper ended), each read served by an
    index of the pipeline's runs (by outcome): newest first before a run, oldest first after one, and counted."""

    def __init__(self, dash: Dashboard, name: str, outcome: str | None) -> None:
        self.dash, self.name, self.outcome = dash, name, outcome
        self.only = None if outcome == LOST else outcome  # the outcome column's value, if one
        self.lost = outcome == LOST

    def before(self, limit: int, position: tuple[str, int] | None = None) -> list[dict[str, Any]]:
        if self.outcome is None:
            return self.dash.history(self.name, limit, position)
        return self.dash.list_runs(pipeline=self.name, outcome=self.only, lost=self.lost, limit=limit, before=position)

    def after(self, limit: int, position: tuple[str, int]) -> list[dict[str, Any]]:
        return self.dash.history_after(self.name, limit, position, outcome=self.only, lost=self.lost)

    def count(self, cap: int) -> int:
        return self.dash.count_runs(self.name, cap, outcome=self.only, lost=self.lost)


@page
def pipeline(request: Request, web: Web, user: dict[str, Any]) -> Response:
    name = request.path_params["name"]
    outcome = text_param(request.query_params, "outcome")
    if outcome is not None and outcome not in runlist.OUTCOMES:
        raise BadRequest(f"`outcome` is one of {', '.join(runlist.OUTCOMES)}")
    history = History(web.dash, name, outcome)
    before_id, after_id = int_param(request.query_params, "before", 1), int_param(request.query_params, "after", 1)
    anchor_id = before_id or after_id
    anchor = web.dash.run_position(anchor_id) if anchor_id else None
    if anchor_id and (anchor is None or anchor["pipeline"] != name):
        return not_found(request, web, user, f"run {anchor_id} is not a run of this pipeline")
    if after_id and anchor is not None:
        runs = list(reversed(history.after(PAGE_SIZE + 1, (anchor["started_at"], anchor["id"]))))
        newer = len(runs) > PAGE_SIZE
        runs = runs[-PAGE_SIZE:] if newer else runs
        if not newer:  # the newest page: shown as the first page is
            runs = history.before(PAGE_SIZE + 1)
            older = len(runs) > PAGE_SIZE
            runs = runs[:PAGE_SIZE]
        else:
            older = True
    else:
        position = (anchor["started_at"], anchor["id"]) if anchor else None
        # The page's runs and the chart's (the 100 up to the page's newest) are one read.
        chart_runs = history.before(max(CHART_RUNS, PAGE_SIZE + 1), position)
        runs = chart_runs[:PAGE_SIZE + 1]
        chart_runs = list(reversed(chart_runs[:CHART_RUNS]))
        older = len(runs) > PAGE_SIZE
        runs = runs[:PAGE_SIZE]
        newer = anchor is not None
    configured = start.command_of(web.config(), name) is not None
    if not runs and anchor is None and outcome is None and not configured and name not in web.config().pipelines:
        return not_found(request, web, user, "no pipeline of this name has runs or is in the config file")
    now = now_ms()
    newest = runs[0] if runs else None
    usual = present.usual(web.dash.successful_durations(
        name, present.SLOW_BASIS, newest["started_at"] if newest else None))
    if after_id and anchor is not None:
        chart_runs = list(reversed(history.before(CHART_RUNS, (newest["started_at"], newest["id"] + 1)
                                                  if newest else None)))
    for run in runs:
        run["slow"] = present.is_slow(run, usual)
    running = web.dash.running_run(name)
    own = web.config().pipelines.get(name)
    axes = present.axes(chart_runs, CHART_WIDTH, CHART_HEIGHT, now, usual, runlist.display_zone(web, request),
                        slots=CHART_RUNS)
    path = f"/pipeline/{path_quote(name)}"
    return web.render(request, "pipeline.html", {
        "name": name, "display_name": own.display_name if own else None,
        "description": own.description if own else None,
        "runs": runs, "usual": usual, "slow_factor": present.SLOW_FACTOR,
        "chart": present.chart(chart_runs, CHART_WIDTH, CHART_HEIGHT, now, usual, link=True, slots=CHART_RUNS,
                               scale_ms=axes["top_ms"]),
        "axes": axes, "chart_count": len(chart_runs), "outcome": outcome, "outcomes": runlist.OUTCOMES,
        "older": url(path, outcome=outcome, before=runs[-1]["id"]) if older and runs else None,
        "newer": url(path, outcome=outcome, after=runs[0]["id"]) if newer and runs else None,
        "newest_url": url(path, outcome=outcome),
        "first_page": anchor is None or not newer, "total": history.count(COUNT_CAP),
        "count_cap": COUNT_CAP, "running": running, "command": configured, "now": now,
        "recent_alerts": alert_history.recent(web, name), "alerts_link": alert_history.history_link(name),
    }, user=user)


# -- one run ------------------------------------------------------------------------------------------------
RUN_ERRORS_SHOWN = 100


@page
def run_page(request: Request, web: Web, user: dict[str, Any]) -> Response:
    run_id = request.path_params["run_id"]
    run = web.dash.run(run_id)
    if run is None:
        return not_found(request, web, user, f"there is no run {run_id}")
    steps = web.dash.steps(run_id)
    errors = web.dash.run_errors(run_id, RUN_ERRORS_SHOWN + 1)
    if len(errors) <= RUN_ERRORS_SHOWN:  # all of them: the crash rows and the count are there already
        crash_rows = [row for row in errors if row["step_name"] == CRASH_STEP]
        error_count = len(errors)
    else:
        crash_rows = web.dash.crash_rows(run_id)
        error_count = web.dash.count_run_errors(run_id, COUNT_CAP)
    now = now_ms()
    info = present.summary(run)
    return web.render(request, "run.html", {
        "run": run, "steps": steps, "errors": errors[:RUN_ERRORS_SHOWN], "more_errors": len(errors) > RUN_ERRORS_SHOWN,
        "error_count": error_count, "count_cap": COUNT_CAP,
        "crash": present.crash_panel(run, crash_rows), "timeline": present.timeline(run, steps, now),
        "summary": present.pretty_json(run.get("summary_json")), "command": info.get("command"),
        "exec_info": info if "command" in info else None, "now": now,
        "elapsed": present.elapsed_ms(run["started_at"], now) if run["outcome"] == RUNNING else None,
        "heartbeat": present.heartbeat(run, now, heartbeat_interval_s(), heartbeat_timeout_s()),
        "lost_end": present.lost_end(run),
    }, user=user)


@page
def run_summary_json(request: Request, web: Web, user: dict[str, Any]) -> Response:
    """The run's summary as stored, whole (the run page shows it cut when it is deep or long)."""
    run_id = request.path_params["run_id"]
    run = web.dash.run(run_id)
    if run is None:
        return not_found(request, web, user, f"there is no run {run_id}")
    return Response(run.get("summary_json") or "null", media_type="application/json")


# -- errors -------------------------------------------------------------------------------------------------
@page
def errors(request: Request, web: Web, user: dict[str, Any]) -> Response:
    flt = error_filter(request.query_params)
    grouped = request.query_params.get("view") == "groups"
    context = error_context(request, web, flt, grouped, "/errors")
    context["pipelines"] = sorted(set(web.dash.pipeline_names()) | set(web.config().pipelines))
    context["steps"] = web.search.step_names()
    return web.render(request, "errors.html", context, user=user)


def error_context(request: Request, web: Web, flt: ErrorFilter, grouped: bool, path: str) -> dict[str, Any]:
    """A page of errors, or the groups of a window of them, with the links that keep the filters."""
    params = filter_params(request.query_params)
    context: dict[str, Any] = {"filter": flt, "params": params, "grouped": grouped, "path": path,
                               "windows": GROUP_WINDOWS, "by_runs": flt.mode == BY_PIPELINE,
                               "run_window": web.search.RUN_WINDOW, "error_window": web.search.ERROR_WINDOW,
                               "flat_url": url(path, **params), "groups_url": url(path, view="groups", **params),
                               "clear_url": url("/errors/clear", **params), "now": now_ms()}
    if grouped:
        window = int_param(request.query_params, "window", 1, max(GROUP_WINDOWS)) or DEFAULT_GROUP_WINDOW
        if window not in GROUP_WINDOWS:
            raise BadRequest(f"`window` is one of {', '.join(str(w) for w in GROUP_WINDOWS)}")
        # Kept while nothing was committed; after a commit only the window's ids are read if it is unchanged.
        count, groups = web.dash.unchanged(("error groups", tuple(flt.fields().items()), window),
                                           lambda: web.window_groups.groups(web.search, flt, window))
        context.update(window=window, window_rows=count, groups=groups)
        return context
    cursor = error_cursor(request.query_params)
    result = web.search.errors(flt, ERRORS_PER_PAGE, cursor)
    context.update(
        rows=result.rows, window_end=result.window_end, cursor=cursor,
        older=url(path, after=cursor_text(result.next), **params) if result.next else None,
        newest=url(path, **params) if cursor else None,
        # Counting is capped, and left out for free text (it would walk the whole window once more).
        count=None if flt.text else web.search.count_errors(flt, COUNT_CAP), count_cap=COUNT_CAP,
    )
    return context


@page
def run_errors(request: Request, web: Web, user: dict[str, Any]) -> Response:
    run_id = request.path_params["run_id"]
    run = web.dash.run(run_id)
    if run is None:
        return not_found(request, web, user, f"there is no run {run_id}")
    after = int_param(request.query_params, "after", 0)
    rows = web.dash.run_errors(run_id, ERRORS_PER_PAGE + 1, after)
    more = len(rows) > ERRORS_PER_PAGE
    rows = rows[:ERRORS_PER_PAGE]
    return web.render(request, "run_errors.html", {
        "run": run, "rows": rows, "count": web.dash.count_run_errors(run_id, COUNT_CAP), "count_cap": COUNT_CAP,
        "older": url(f"/errors/{run_id}", after=rows[-1]["id"]) if more else None,
        "first": url(f"/errors/{run_id}") if after else None, "now": now_ms(),
    }, user=user)


@page
def member(request: Request, web: Web, user: dict[str, Any]) -> Response:
    identifier = request.path_params["identifier"]
    flt = ErrorFilter(member=identifier)
    cursor = error_cursor(request.query_params)
    result = web.search.errors(flt, ERRORS_PER_PAGE, cursor)
    if not result.rows and cursor is None:
        return not_found(request, web, user, "no errors were recorded for this member")
    window = web.search.error_window(flt, 1000)
    groups = grouping.group(window)
    pipelines: dict[str, int] = {}
    for row in window:
        pipelines[row["pipeline"] or "?"] = pipelines.get(row["pipeline"] or "?", 0) + 1
    return web.render(request, "member.html", {
        "member": identifier, "rows": result.rows, "groups": groups, "window_rows": len(window),
        "pipelines": sorted(pipelines.items(), key=lambda kv: -kv[1]),
        "runs": len({row["run_id"] for row in window}),
        "count": web.search.count_errors(flt, COUNT_CAP), "count_cap": COUNT_CAP,
        "older": url(f"/member/{path_quote(identifier)}", after=cursor_text(result.next)) if result.next else None,
        "newest": url(f"/member/{path_quote(identifier)}") if cursor else None, "now": now_ms(),
    }, user=user)


@page
def clear_confirm(request: Request, web: Web, user: dict[str, Any]) -> Response:
    flt = error_filter(request.query_params)
    matching = web.search.count_errors(flt, COUNT_CAP)
    # Crash rows match the filters too, but clearing keeps them (`Runs.clear_errors`): the page says how many
    # will be deleted and how many are kept, so the result it reports afterwards is the number promised here.
    crash_rows = ErrorFilter(pipeline=flt.pipeline, step=CRASH_STEP, member=flt.member, text=flt.text,
                             since=flt.since, until=flt.until)
    kept = web.search.count_errors(crash_rows, COUNT_CAP) if flt.step in (None, CRASH_STEP) and matching else 0
    return web.render(request, "clear.html", {
        "filter": flt, "params": filter_params(request.query_params), "count": matching,
        "deleted": None if matching > COUNT_CAP else matching - kept, "kept": kept,
        "count_cap": COUNT_CAP, "back": url("/errors", **filter_params(request.query_params)),
    }, user=user)


@form_post
async def clear_post(request: Request, web: Web, user: dict[str, Any], form: FormData) -> Response:
    try:
        flt = error_filter(form)
    except BadRequest as exc:
        return web.render(request, "message.html", {"title": "Bad request", "message": str(exc)}, 400, user)
    if form.get("confirm") != "yes":
        return RedirectResponse(url("/errors/clear", **filter_params(form)), status_code=303)
    deleted = await run_in_threadpool(web.runs.clear_errors, flt)
    web.sessions.flash(request, f"Cleared {present.plural(deleted, 'error')}; crash rows are kept.")
    return web.sessions.save(request, RedirectResponse(url("/errors", **filter_params(form)), status_code=303))


# -- Start ----------------------------------------------------------------------------------------------------
@form_post
async def start_post(request: Request, web: Web, user: dict[str, Any], form: FormData) -> Response:
    name = request.path_params["name"]
    result = await run_in_threadpool(start.start, web.dash, web.config(), name, f"dashboard:{user['name']}",
                                     web.settings.db, web.settings.pass_env)
    if result.status == "not_configured":
        return web.render(request, "message.html", {
            "title": NOT_FOUND, "message": "this pipeline has no command in the config file"}, 404, user)
    if result.status == "running":
        return web.render(request, "message.html", {
            "title": "Already running", "message": f"{name} is running already (run {result.run_id}): it was not "
            "started again."}, 409, user)
    web.sessions.flash(request, f"Started {name}" + (f" (run {result.run_id})." if result.run_id else "."))
    return web.sessions.save(request, RedirectResponse(safe_next(form.get("next")), status_code=303))
