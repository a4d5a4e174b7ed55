"""What every page and API call shares: the `Web` object (store, queries, sessions, templates, config), login
and API-key checks, rendering, and reading filters and cursors from a request.

Endpoints that only read are plain functions (Starlette runs them in its thread pool: the database calls
block); POST endpoints are coroutines, because reading a form is, and hand their database work to the pool.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ..base import zones
from ..base.clock import iso, now_ms, to_ms
from ..base.outcomes import RUNNING
from ..base.schedule import croniter_available, to_instant
from ..base.status import PipelineFacts, PipelineStatus, pipeline_status
from ..settings import configfile, display
from ..settings.pipelines import PipelineConfig, Watch
from ..settings.state import SETTINGS
from ..settings.values import heartbeat_interval_s, heartbeat_timeout_s
from ..settings.web import DEMO_PASSWORD, DEMO_USER, WebSettings
from ..storage import Runs, Store, open_store
from ..storage.alerts import AlertStore
from ..storage.auth import START, ApiKey, Auth, Permissions
from ..storage.dashboard import Dashboard
from ..storage.errorfilter import ErrorFilter
from ..storage.ingest import Ingest
from ..storage.search import ErrorCursor, ErrorSearch
from . import grouping, passwords, present
from .bodies import BodyRefused, read_form
from .sessions import CSRF_FIELD, RateLimit, Sessions, new_session_id, session_id_hash

log = logging.getLogger("runtracker.web")

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 20  # runs per history page
ERRORS_PER_PAGE = 50
COUNT_CAP = 1000
# The grouped view groups the latest N errors matching the filters: 2,000 by default (about 10 ms on SQLite with
# 5,000,000 errors), more on request.
GROUP_WINDOWS = (2000, 5000, 20000)
DEFAULT_GROUP_WINDOW = 2000
API_KEY_TOUCH_S = 60.0  # last_used_at is written at most once a minute per key
# A key found in the database is remembered this long: a removed key (`runtracker user key-remove`), or a changed
# write scope, takes effect within it. An unknown key is looked up every time.
API_KEY_MEMORY_S = 5.0
MAX_REMEMBERED_KEYS = 1000
MAX_TEXT = 200  # the longest filter value taken
MAX_SESSIONS_PER_USER = 100  # a login beyond it ends the user's oldest session
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?Z?$")
_SAFE_NEXT = re.compile(r"^/(?![/\\])[^\s]*$")
MAX_ID = 2**63 - 1  # the largest id either database stores (a signed 64-bit integer)


def _at_most(limit: int) -> str:
    """A regular expression for the decimal numbers from 0 to `limit` (leading zeros allowed)."""
    digits = str(limit)
    same_length = [digits[:i] + f"[0-{int(d) - 1}]" + f"[0-9]{{{len(digits) - i - 1}}}"
                   for i, d in enumerate(digits) if d != "0"]
    return "0*(?:" + "|".join([f"[0-9]{{1,{len(digits) - 1}}}", *same_length, digits]) + ")"


class IdConvertor(Convertor[int]):
    """`{run_id:id}`: a row id, 0 to MAX_ID. A larger number does not match the route (404), where `:int` would
    pass it on to SQLite, which cannot bind it (a 500)."""

    regex = _at_most(MAX_ID)

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())


# What a dashboard user may do: start every pipeline (the Start button), as every user could before permissions
# existed. Roles (viewer, operator, admin) will give each user a permission set of their own.
USER_PERMISSIONS = Permissions({START: ("*",)})
DEMO_USER_LEFT = (
    "runtracker: the database holds the user %r made by demo mode (`runtracker serve --demo`), whose password is "
    "public: this server refuses it (demo credentials work only in demo mode). Remove it: runtracker user remove %s"
)
DEMO_LOGIN_REFUSED = "runtracker: refused a login as the demo user %r: demo credentials work only in demo mode"


class Principal:
    """Who is asking: a dashboard user (session) or an API key, and what they may do."""

    __slots__ = ("kind", "name", "via_key", "permissions")

    def __init__(self, kind: str, name: str, via_key: bool, permissions: Permissions) -> None:
        self.kind = kind  # "dashboard" or "api"
        self.name = name
        self.via_key = via_key
        self.permissions = permissions

    def may(self, action: str, pipeline: str) -> bool:
        """Whether this principal may do `action` (storage.auth.START, ...) to the pipeline."""
        return self.permissions.allows(action, pipeline)

    @property
    def started_by(self) -> str:
        return f"{self.kind}:{self.name}"


class Templates(jinja2.Environment):
    """Jinja2 with `row.column` looking in a dict first. Jinja's own order (the attribute, then the item) costs
    a raised AttributeError for each `card.name` of a dict: about half of the overview's rendering time."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


class BadRequest(Exception):
    """A query parameter that cannot be used; the message says which."""


class Web:
    """The dashboard's state, one per app."""

    def __init__(self, settings: WebSettings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.db)
        # The queries, by resource (runtracker.storage): the dashboard's reads of runs, the error browser's,
        # users and API keys, a run's records (clearing errors, the ingest API's writes), the ingest API's own.
        self.dash = Dashboard(self.store)
        self.search = ErrorSearch(self.store)
        self.window_groups = grouping.WindowGroups()  # the grouped error pages' windows, kept
        self.auth = Auth(self.store)
        self.runs = Runs(self.store)
        self.ingest = Ingest(self.store)
        self.sessions = Sessions(settings.secret, settings.session_max_age_s)
        self.login_limit = RateLimit(settings.login_attempts, settings.login_window_s)
        # The templates ship with the package: no auto_reload, so no stat of each template on each page.
        self.templates = Templates(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                                   trim_blocks=True, lstrip_blocks=True, auto_reload=False)
        # Times: `ago` (relative), `local` (in the page's display zone), `utc` and `exact` (tooltips); the zone
        # is the request's (`display_zone`), applied in web/present and nowhere else.
        self.templates.filters.update(duration=present.duration, ago=present.ago, local=present.local,
                                      utc=present.utc, exact=present.exact, q=path_quote, plural=present.plural,
                                      number=lambda n: f"{n:,}" if isinstance(n, int) else n)
        self.templates.globals.update(url=url)
        self._config: tuple[float | None, PipelineConfig] | None = None
        self._kept_pages: tuple[int, dict[Hashable, bytes]] = (0, {})  # render_kept's: (the second, pages)
        self._kept_lock = threading.Lock()
        self._key_touched: dict[int, float] = {}
        self._keys: dict[str, tuple[ApiKey, float]] = {}  # key hash -> (the key, remembered until)
        if settings.demo:
            self.ensure_demo_user()
        else:
            self.warn_of_demo_users()

    # -- config --------------------------------------------------------------------------------------------
    def config(self) -> PipelineConfig:
        """The pipeline config file, read again when it changed; a broken file is logged and read as empty
        (the pages go on; Start buttons disappear until it is fixed)."""
        path = configfile.config_path(self.settings.config_path)
        try:
            stamp = os.stat(path).st_mtime if path else None
        except OSError:
            stamp = None
        if self._config is not None and self._config[0] == stamp:
            return self._config[1]
        try:
            loaded = configfile.load(self.settings.config_path)
        except configfile.ConfigError as exc:
            log.error("runtracker: the pipeline config cannot be used: %s", exc)
            loaded = PipelineConfig()
        self._config = (stamp, loaded)
        return loaded

    def display_zone(self, request: Request, user: dict[str, Any] | None) -> present.DisplayZone:
        """The zone this request's page shows times in: the user's own, else the browser's (the cookie the
        page's script sets), else the configured one (settings/display.py), whose wrong value is warned about
        once. A user's or browser's zone this machine does not know is skipped."""
        own = display.usable(user.get("timezone")) if user is not None else None
        if own is not None:
            return present.DisplayZone(own, display.USER)
        browser = display.usable(request.cookies.get(display.BROWSER_COOKIE))
        if browser is not None:
            return present.DisplayZone(browser, display.BROWSER)
        configured = display.configured(self.config())
        if configured.warnings:
            SETTINGS.warn(configured)
        return present.DisplayZone(str(configured.value), configured.source)

    def statuses(self, names: Sequence[str], latest: Mapping[str, Sequence[dict[str, Any]]],
                 running: Sequence[dict[str, Any]], now: int) -> dict[str, PipelineStatus]:
        """Each pipeline's status (runtracker.base.status: running, overdue since, too long, next due) from the
        rows a page read: `latest`, each pipeline's latest runs, newest first; `running`, the `running` runs, oldest
        first. Schedules need the alerts extra (croniter); without it, and if evaluating one fails (logged), a
        status says only what needs no schedule."""
        config = self.config()
        by_pipeline: dict[str, list[dict[str, Any]]] = {}
        for row in running:
            by_pipeline.setdefault(row["pipeline"], []).append(row)
        expected = {name: watch_of(config, name) for name in names}
        if any(w.schedule is not None for w in expected.values()) and not croniter_available():
            expected = {name: dataclasses.replace(w, schedule=None) for name, w in expected.items()}
        # When the monitors first watched a pipeline matters only for a scheduled one that never ran.
        unseen = tuple(n for n in names if expected[n].schedule is not None and not latest.get(n))
        watched = self.dash.unchanged(("watched_since", unseen), lambda: AlertStore(self.store).watched_since(
            unseen)) if unseen else {}
        found, failed = {}, None
        # A running run looks late before the reaper would end it (base.status.heartbeat_late_after_s).
        heartbeat = (heartbeat_interval_s(), heartbeat_timeout_s())
        for name in names:
            rows = latest.get(name)
            done = next((row["outcome"] for row in rows or () if row["outcome"] != RUNNING), None)
            facts = PipelineFacts(to_ms(rows[0]["started_at"]) if rows else None, by_pipeline.get(name, ()),
                                  to_ms(watched[name]) if name in watched else None, done)
            try:
                found[name] = pipeline_status(name, expected[name], facts, now, heartbeat)
            except Exception as exc:  # a schedule croniter cannot walk: this pipeline's lines are left out
                failed = failed or exc
                found[name] = pipeline_status(name, dataclasses.replace(expected[name], schedule=None), facts, now,
                                              heartbeat)
        if failed is not None:
            log.error("runtracker: the schedules cannot be shown (%s: %s)", type(failed).__name__, failed)
        return found

    # -- users ---------------------------------------------------------------------------------------------
    def ensure_demo_user(self) -> None:
        """Demo mode: the user demo/demo, marked demo-only (a server not in demo mode refuses it), if the
        database has no real user."""
        if self.auth.user_count() == 0 and self.auth.add_demo_user(DEMO_USER, passwords.hash_password(DEMO_PASSWORD)):
            log.warning("runtracker: DEMO MODE: created the user %r with the password %r (demo mode only)",
                        DEMO_USER, DEMO_PASSWORD)
        log.warning("runtracker: DEMO MODE: sessions are signed with a public secret; do not serve real data")

    def warn_of_demo_users(self) -> None:
        """Outside demo mode: say loudly, at startup, that the database holds demo mode's user; `login` refuses
        it. That is a user marked demo-only, or the user demo with the password demo (made by a version before
        demo-only users, or by hand)."""
        for row in self.auth.users():
            if row["demo_only"] or (row["name"] == DEMO_USER and passwords.verify_password(
                    (self.auth.user(DEMO_USER) or {}).get("password_hash", ""), DEMO_PASSWORD)):
                log.warning(DEMO_USER_LEFT, row["name"], row["name"])

    def user(self, request: Request) -> dict[str, Any] | None:
        """The logged-in user, checked against the database at every request: a session ended (logout,
        `runtracker user logout`), a removed user or a changed password ends it on every server of the
        database. The read is kept while nothing is committed to the database (`Dashboard.unchanged`)."""
        session = self.sessions.load(request)
        sid = session.get("sid")
        if not isinstance(sid, str):
            return None
        row = self.dash.unchanged(("session", sid), lambda: self.auth.session_user(session_id_hash(sid)))
        if row is None or row["id"] != session.get("uid") or row["expires_at"] <= iso(now_ms()) or \
                session.get("pw") != passwords.fingerprint(self.settings.secret, row["password_hash"]) or \
                (row["demo_only"] and not self.settings.demo):
            return None
        return row

    def login(self, name: str, password: str) -> dict[str, Any] | None:
        """The user if the password is right; outside demo mode never demo mode's user (logged)."""
        row = self.auth.user(name)
        if row is None:
            passwords.burn_time(password)
            return None
        if not passwords.verify_password(row["password_hash"], password):
            return None
        if not self.settings.demo and (row["demo_only"] or (name == DEMO_USER and password == DEMO_PASSWORD)):
            log.warning(DEMO_LOGIN_REFUSED, name)
            return None
        return row

    def open_session(self, request: Request, row: dict[str, Any]) -> None:
        """After a login: a new session (a new random id, stored hashed; the request's former one ended) in the
        database and in the cookie."""
        self.end_session(request)
        sid = new_session_id()
        expires = iso(now_ms() + self.settings.session_max_age_s * 1000)
        self.auth.open_session(int(row["id"]), session_id_hash(sid), expires, keep=MAX_SESSIONS_PER_USER)
        self.sessions.replace(request, {"sid": sid, "uid": row["id"],
                                        "pw": passwords.fingerprint(self.settings.secret, row["password_hash"])})

    def end_session(self, request: Request) -> None:
        """Logout: the session's row is deleted, so its cookie, copied or not, opens nothing any more; the
        browser gets a new, empty session."""
        sid = self.sessions.load(request).get("sid")
        if isinstance(sid, str):
            self.auth.end_session(session_id_hash(sid))
        self.sessions.replace(request, {})

    def principal(self, request: Request) -> Principal | None:
        """An API key (Authorization: Bearer KEY, or X-API-Key), else the session's user."""
        header = request.headers.get("authorization", "")
        secret = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
        if secret:
            key = self.api_key(secret)
            return None if key is None else Principal("api", key.name, True, key.permissions)
        user = self.user(request)
        return Principal("dashboard", str(user["name"]), False, USER_PERMISSIONS) if user else None

    # -- API keys ------------------------------------------------------------------------------------------
    def api_key(self, secret: str) -> ApiKey | None:
        """The API key a request sent, or None if the database does not know it; its `last_used_at` is written at
        most once a minute (API_KEY_TOUCH_S). A key found is remembered for API_KEY_MEMORY_S (see
        `remembered_api_key`); one not found is not, so a new key works at once and guesses take no memory."""
        key_hash = passwords.key_hash(secret)
        now = time.monotonic()
        found = self._keys.get(key_hash)
        if found is not None and found[1] > now:
            key = found[0]
        else:
            looked_up = self.auth.api_key(key_hash)
            if looked_up is None:
                self._keys.pop(key_hash, None)
                return None
            key = looked_up
            if len(self._keys) >= MAX_REMEMBERED_KEYS:
                self._keys = {h: kept for h, kept in self._keys.items() if kept[1] > now}
            self._keys[key_hash] = (key, now + API_KEY_MEMORY_S)
        if now - self._key_touched.get(key.key_id, -API_KEY_TOUCH_S) >= API_KEY_TOUCH_S:
            self._key_touched[key.key_id] = now
            self.auth.touch_api_key(key.key_id, iso(now_ms()))
        return key

    def remembered_api_key(self, secret: str) -> ApiKey | None:
        """The key if it was found in the database less than API_KEY_MEMORY_S ago and its `last_used_at` is not
        due: no database call (the event loop may ask). Else None: ask `api_key` (in the thread pool)."""
        found = self._keys.get(passwords.key_hash(secret))
        now = time.monotonic()
        if found is None or found[1] <= now or \
                now - self._key_touched.get(found[0].key_id, -API_KEY_TOUCH_S) >= API_KEY_TOUCH_S:
            return None
        return found[0]

    # -- rendering -----------------------------------------------------------------------------------------
    def render(self, request: Request, name: str, context: dict[str, Any], status: int = 200,
               user: dict[str, Any] | None = None) -> HTMLResponse:
        session = self.sessions.load(request)
        running = self.dash.unchanged("running_count", self.dash.running_count) if user is not None else 0
        # A page's view ran in its zone already (`page`); a page made outside one (login) gets it here.
        zone = present.display_zone() if present.zone_is_set() else self.display_zone(request, user)
        with present.in_zone(zone):
            html = self.templates.get_template(name).render(
                request_path=request.url.path, user=user, csrf=session["csrf"], running_count=running,
                flash=self.sessions.pop_flash(request), demo=self.settings.demo,
                disk_problem=self.store.disk_problem(), display_zone=zone,
                # The page's script may reload a page got by GET (never a form's answer; not the login page,
                # which shows no time and is being typed into) once it has set the browser's zone, unless the
                # user's own zone is what the page uses anyway.
                ask_zone=request.method == "GET" and user is not None and zone.source != display.USER,
                **{"now": now_ms(), **context})
        response = HTMLResponse(html, status_code=status)
        self.sessions.save(request, response)
        return response

    # How many pages `render_kept` keeps within one second (one per browser session asking).
    KEPT_PAGES = 32

    def render_kept(self, request: Request, name: str, context: Callable[[], dict[str, Any]],
                    user: dict[str, Any], set_cookie: tuple[str, str] | None = None) -> HTMLResponse:
        response = self._render_kept(request, name, context, user)
        if set_cookie is not None:  # a choice the browser remembers (after keeping: a kept page sets none)
            response.set_cookie(set_cookie[0], set_cookie[1], max_age=365 * 86400, httponly=True, samesite="lax")
        return response

    def _render_kept(self, request: Request, name: str, context: Callable[[], dict[str, Any]],
                     user: dict[str, Any]) -> HTMLResponse:
        """`render(request, name, context(), user=user)`, kept for the rest of the second while nothing was
        committed: the same request (path, query, cookies: the session, so the user and CSRF token too) in the
        same second, with the database (`Store.change_token`), the config file and the disk's state as they were,
        gets the same page without reading or drawing it again. A page depends on nothing else: its times are
        drawn to the second at most ("running for 10m 11s", "3 h ago"), so it is the page a render at that
        moment would give. A session with a flash message to show is rendered (showing it changes the session).

        The overview, refreshed every minute by every open browser, is what this is for: 200 pipelines are a
        megabyte of HTML, which takes longer to draw than to read while nothing changes."""
        session = self.sessions.load(request)
        token = self.store.change_token()
        if "flash" in session or token is None:
            return self.render(request, name, context(), user=user)
        config = self.config()
        second = now_ms() // 1000
        key = (name, request.url.path, request.url.query, request.headers.get("cookie"), user.get("id"), token,
               self._config[0] if self._config else None, id(config), self.store.disk_problem())
        kept_second, pages = self._kept_pages
        if kept_second == second and key in pages:
            return self.sessions.save(request, HTMLResponse(pages[key]))  # type: ignore[return-value]
        # One draw at a time: the requests that come in while the page of a new second is drawn wait for it and
        # take it, rather than all drawing it (drawing is Python: they would only take turns on the GIL).
        with self._kept_lock:
            kept_second, pages = self._kept_pages
            if kept_second == second and key in pages:
                return self.sessions.save(request, HTMLResponse(pages[key]))  # type: ignore[return-value]
            response = self.render(request, name, context(), user=user)
            if kept_second != second:
                pages = {}
                self._kept_pages = (second, pages)
            if response.status_code == 200 and len(pages) < self.KEPT_PAGES and "set-cookie" not in response.headers:
                pages[key] = bytes(response.body)
        return response

    def to_login(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(url("/login", next=target), status_code=303)
        return self.sessions.save(request, response)


def watch_of(config: PipelineConfig, pipeline: str) -> Watch:
    """`config.pipeline(pipeline).watch` without building a Pipeline (a card each, on every overview)."""
    own = config.pipelines.get(pipeline)
    return own.watch if own is not None else config.default_watch


def path_quote(value: object) -> str:
    """A value as one segment of a URL path: `/` and every other special character escaped."""
    return quote(str(value), safe="")


def url(path: str, **params: object) -> str:
    """A local URL with the given query parameters (empty ones left out)."""
    query = urlencode([(k, str(v)) for k, v in params.items() if v not in (None, "")])
    return f"{path}?{query}" if query else path


def safe_next(target: object) -> str:
    """Where to go after login: a local path only (never `//host` or another site)."""
    return target if isinstance(target, str) and _SAFE_NEXT.match(target) else "/"


def web_of(request: Request) -> Web:
    return request.app.state.web  # type: ignore[no-any-return]


Page = Callable[[Request, Web, dict[str, Any]], Response]
Form = Callable[[Request, Web, dict[str, Any], FormData], Awaitable[Response]]


def page(fn: Page) -> Callable[[Request], Response]:
    """A page that needs a login; without one, a redirect to /login (and back after it)."""

    @functools.wraps(fn)
    def endpoint(request: Request) -> Response:
        web = web_of(request)
        user = web.user(request)
        if user is None:
            return web.to_login(request)
        with present.in_zone(web.display_zone(request, user)):  # every time the page shows, in the reader's zone
            try:
                return fn(request, web, user)
            except BadRequest as exc:
                return web.render(request, "message.html", {"title": "Bad request", "message": str(exc)}, 400,
                                  user)

    return endpoint


def form_post(fn: Form) -> Callable[[Request], Awaitable[Response]]:
    """A POST from a page: a login and the session's CSRF token are required (403 without the token)."""

    @functools.wraps(fn)
    async def endpoint(request: Request) -> Response:
        web = web_of(request)
        user = await run_in_threadpool(web.user, request)
        if user is None:
            return web.to_login(request)
        try:
            form = await read_form(request)
        except BodyRefused as refused:
            return body_refused(web, request, user, refused)
        if not web.sessions.csrf_ok(request, form.get(CSRF_FIELD)):
            return csrf_refused(web, request, user)
        # The form's dates are on the reader's wall clock, as the page that sent it showed them.
        with present.in_zone(web.display_zone(request, user)):
            return await fn(request, web, user, form)

    return endpoint


def body_refused(web: Web, request: Request, user: dict[str, Any] | None, refused: BodyRefused) -> Response:
    return web.render(request, "message.html", {"title": "Refused", "message": f"This form was refused: "
                                                f"{refused.message}."}, refused.status, user)


def csrf_refused(web: Web, request: Request, user: dict[str, Any] | None) -> Response:
    return web.render(request, "message.html", {
        "title": "Refused", "message": "This form has expired or did not come from this dashboard (CSRF check "
        "failed). Go back, reload the page and try again."}, 403, user)


def api_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# -- reading requests ---------------------------------------------------------------------------------------
Values = Mapping[str, Any]  # a request's query parameters, or a form


def text_param(values: Values, name: str) -> str | None:
    value = str(values.get(name) or "").strip()
    if len(value) > MAX_TEXT:
        raise BadRequest(f"`{name}` is longer than {MAX_TEXT} characters")
    return value or None


def int_param(values: Values, name: str, low: int = 0, high: int = 2**63 - 1) -> int | None:
    value = str(values.get(name) or "").strip()
    if not value:
        return None
    if not value.isdigit() or not low <= int(value) <= high:
        raise BadRequest(f"`{name}` must be a whole number from {low} to {high}")
    return int(value)


def run_cursor(web: Web, values: Values) -> tuple[str, int] | None:
    """The keyset cursor of a list of runs newest first: `before=<run id>` as (its started_at, its id); None
    without one. 400 for a run that does not exist."""
    before_id = int_param(values, "before", 1)
    if before_id is None:
        return None
    anchor = web.dash.run_position(before_id)
    if anchor is None:
        raise BadRequest(f"there is no run {before_id}")
    return anchor["started_at"], anchor["id"]


def moment_param(values: Values, name: str, *, end: bool = False) -> str | None:
    """A date (`2026-11-30`; as an end, the whole day is included) or a date and time, on the wall clock of the
    page's display zone (ending in `Z`: UTC), as stored text: the day a reader picks is their own day."""
    given = text_param(values, name)
    if given is None:
        return None
    value = given
    if _DATE.match(value):
        value += "T00:00:00.000Z"
    elif _DATETIME.match(value):
        value = value.replace(" ", "T").rstrip("Z")
        value = value + ":00" if len(value) == 16 else value
        value = (value + ".000" if len(value) == 19 else value.ljust(23, "0")) + "Z"
    else:
        raise BadRequest(f"`{name}` must be a date (2026-11-30) or a date and time (2026-11-30T14:00)")
    ms = to_ms(value)
    if ms is None:
        raise BadRequest(f"`{name}` is not a date: {given}")
    if end and _DATE.match(given):
        ms += 86_400_000  # the next day's midnight, on the wall clock (a day of a DST change is 23 or 25 hours)
    zone = present.display_zone().name
    if not given.endswith("Z") and zone != "UTC":
        wall = datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)
        ms = to_instant(wall, zones.zone(zone))
    return iso(ms)


FILTER_KEYS = ("pipeline", "step", "member", "q", "since", "until")


def error_filter(values: Values, **fixed: str | None) -> ErrorFilter:
    """The error browser's filters from query parameters (or a form): pipeline, step, member, q (free text),
    since and until (dates, until inclusive)."""
    found = {"pipeline": text_param(values, "pipeline"), "step": text_param(values, "step"),
             "member": text_param(values, "member"), "text": text_param(values, "q"),
             "since": moment_param(values, "since"), "until": moment_param(values, "until", end=True)}
    found.update(fixed)
    return ErrorFilter(**found)


def filter_params(values: Values) -> dict[str, str]:
    """The filter parameters as given, for links and forms that keep them."""
    return {k: v for k in FILTER_KEYS if (v := str(values.get(k) or "").strip())}


def error_cursor(values: Values) -> ErrorCursor | None:
    raw = str(values.get("after") or "")
    if not raw:
        return None
    parts = raw.split("~")
    try:
        if len(parts) == 2 and to_ms(parts[0]) is not None:
            return ErrorCursor(created_at=parts[0], error_id=_row_id(parts[1]))
        if len(parts) == 3 and to_ms(parts[0]) is not None:
            return ErrorCursor(run_started_at=parts[0], run_id=_row_id(parts[1]), error_id=_row_id(parts[2]))
    except ValueError:
        pass
    raise BadRequest("`after` is not a cursor this dashboard made")


def _row_id(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_ID:
        raise ValueError(f"{text} is not a row id")
    return value


def cursor_text(cursor: ErrorCursor | None) -> str | None:
    if cursor is None:
        return None
    if cursor.run_started_at is not None:
        return f"{cursor.run_started_at}~{cursor.run_id}~{cursor.error_id}"
    return f"{cursor.created_at}~{cursor.error_id}"
