"""The dashboard's benchmark: server time per page, database time against hand-written SQL, overview throughput.

    python bench/web.py            # 1,000,000 runs / 2,000,000 steps / 5,000,000 errors, SQLite and PostgreSQL
    python bench/web.py --quick    # 120,000 runs, fewer requests: a fast check (history page 499, not 2,000)
    make bench-web

On the history of bench/web_history.py (200 pipelines: 12 busy ones of ~66,700 runs each, 184 of ~1,100, 4 that
never ran; some failing, running, overdue; PostgreSQL at $RUNTRACKER_BENCH_PG, default the local test server,
schema bench_web or --pg-schema), with the config file that goes with it (schedules, a command per pipeline), on
each backend:

1. **Server time per page.** The dashboard's ASGI app is called in this process, directly (no HTTP client: a
   scope, a receive and a send), with a logged-in session cookie made by a real POST /login. The time is taken
   around the app call: routing, the session and user check, the queries, the rows into pages, Jinja2, the
   response. Each page is requested WARMUP times, then REQUESTS times: median and p95, against the goals
   (≤ 15 ms p95 on SQLite, ≤ 20 ms on PostgreSQL).
2. **Database time against the same query written by hand.** While a page is served, `Store.read` is wrapped
   to sum the time of every query it makes (the session's user, the header's running count and the page's
   own). Alternating with each request, the minimal SQL that produces the same page (`HAND` below: the same
   rows, the same user check and running count, nothing the page does not show) runs on a raw sqlite3 /
   psycopg connection. The ratio is the median of the per-request ratios (goal ≤ 2×).
3. **Overview throughput.** `runtracker serve` (uvicorn) as a subprocess, logged in over HTTP, and a load
   generator in this process (asyncio, keep-alive connections, raw HTTP/1.1) that shares the same 2 cores:
   requests/s of GET / over LOAD_S seconds (goal ≥ 200/s), every answer checked for 200 and 200 cards.
4. **For scale**, the original dashboard's query shapes on the same history with the original tool's indexes
   only: the other indexes are dropped inside a transaction that is rolled back afterwards (both backends
   drop an index transactionally), so the history is left as it was. The shapes are the ones the issue
   describes, written by us: COUNT(*) over the errors joined to their runs plus an OFFSET page, over the
   whole history's date range, unfiltered and for one pipeline; "is a pipeline running" with the outcome not in
   the index; history page 2,000 by OFFSET.

The last line of output is one JSON object with the figures; the full run writes bench/RESULTS.md's
`dashboard` section.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _src_argument() -> Path:
    """`--src DIR`: measure another checkout's src/ (the code before a change, side by side with this one's
    benchmark), read before anything of runtracker is imported; `runtracker serve` gets it as PYTHONPATH."""
    for i, arg in enumerate(sys.argv):
        if arg == "--src" and i + 1 < len(sys.argv):
            return Path(sys.argv[i + 1]).resolve()
        if arg.startswith("--src="):
            return Path(arg.split("=", 1)[1]).resolve()
    return ROOT / "src"


SRC = _src_argument()
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(SRC))

import web_history  # noqa: E402
from benchlib import machine, write_section  # noqa: E402

from runtracker.base.clock import iso, to_ms  # noqa: E402
from runtracker.settings.values import HEARTBEAT_TIMEOUT_ENV  # noqa: E402
from runtracker.settings.web import WebSettings  # noqa: E402
from runtracker.storage import open_store  # noqa: E402
from runtracker.storage.postgres import to_pyformat  # noqa: E402
from runtracker.web import passwords  # noqa: E402
from runtracker.web.app import create_app  # noqa: E402
from runtracker.web.sessions import COOKIE  # noqa: E402

MODES = {
    "quick": {"runs": 120_000, "warmup": 5, "requests": 40, "original_repeats": 1, "load_s": 3.0},
    "full": {"runs": 1_000_000, "warmup": 20, "requests": 200, "original_repeats": 3, "load_s": 15.0},
}
GOAL_P95_MS = {"sqlite": 15.0, "postgresql": 20.0}
GOAL_RATIO = 2.0
GOAL_RPS = 200.0
DEEP_PAGE = 2000
PAGE_SIZE = 20  # runtracker.web.core.PAGE_SIZE
# A user of this process's own (removed at the end): two benchmarks may measure one history side by side, and
# setting the password of a user ends that user's sessions.
USER, PASSWORD = f"bench-{os.getpid()}", "bench-password-not-secret"
SECRET = "bench-web-secret-of-more-than-32-characters"
PIPELINE = "nikki"
TEXT = "IBAN"  # in one error message of 8
LOAD_CONNECTIONS = 8

say: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


# -- calling the ASGI app in-process ---------------------------------------------------------------------------
class Answer:
    __slots__ = ("status", "headers", "body", "seconds")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.seconds = 0.0

    def header(self, name: str) -> list[str]:
        return [v.decode("latin-1") for k, v in self.headers if k.decode("latin-1").lower() == name]


async def asgi(app: Any, method: str, target: str, cookie: str | None = None, form: dict[str, str] | None = None
               ) -> Answer:
    """One request straight into the app; `seconds` is the time of the app call alone."""
    path, _, query = target.partition("?")
    body = urlencode(form).encode() if form is not None else b""
    headers = [(b"host", b"bench.local"), (b"user-agent", b"bench-web")]
    if cookie:
        headers.append((b"cookie", f"{COOKIE}={cookie}".encode()))
    if form is not None:
        headers += [(b"content-type", b"application/x-www-form-urlencoded"),
                    (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": quote(path).encode(),
             "query_string": query.encode(), "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 40000), "server": ("bench.local", 80), "state": {}}
    answer = Answer()
    sent = False
    parts: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    began = time.perf_counter()
    await app(scope, receive, send)
    answer.seconds = time.perf_counter() - began
    answer.body = b"".join(parts)
    return answer


def cookie_of(answer: Answer) -> str | None:
    for value in answer.header("set-cookie"):
        if value.startswith(f"{COOKIE}="):
            return value.split(";", 1)[0].split("=", 1)[1]
    return None


CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')


async def log_in(app: Any) -> str:
    """A session cookie from a real login (GET /login for the CSRF token, POST /login)."""
    first = await asgi(app, "GET", "/login")
    token = CSRF.search(first.body)
    assert token, "no CSRF token on /login"
    answer = await asgi(app, "POST", "/login", cookie_of(first),
                        {"username": USER, "password": PASSWORD, "csrf_token": token.group(1).decode(), "next": "/"})
    assert answer.status == 303, (answer.status, answer.body[:300])
    cookie = cookie_of(answer)
    assert cookie
    return cookie


# -- the histories and what the pages are asked for ---------------------------------------------------------------
class Backend:
    """One backend's history: its URL, a raw connection for the hand-written SQL, the values the pages use."""

    def __init__(self, dialect: str, url: str, path: Path | None) -> None:
        self.dialect = dialect
        self.url = url
        self.path = path  # SQLite's file (its mtime is kept: the history cache goes by it)
        if dialect == "sqlite":
            import sqlite3

            self.raw = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        else:
            from runtracker.storage.postgres import driver

            self.raw = driver().connect(url, autocommit=True)
        self._sql: dict[str, str] = {}
        self._scratch = False

    def sql(self, text: str) -> str:
        if self.dialect == "sqlite":
            return text
        found = self._sql.get(text)
        if found is None:
            found = self._sql[text] = to_pyformat(text.replace(" LIKE ", " ILIKE "))
        return found

    def query(self, text: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cur = self.raw.execute(self.sql(text), params)
        return cur.fetchall()

    def commit_elsewhere(self) -> None:
        """A commit from another connection, as a pipeline's would be: what the dashboard kept of its last reads
        (`Dashboard.unchanged`) is then read anew."""
        if not self._scratch:
            self.raw.execute(f"CREATE TABLE IF NOT EXISTS {self.scratch} (n INTEGER)")
            self._scratch = True
        self.raw.execute(f"INSERT INTO {self.scratch} (n) VALUES (1)")

    # The commits' table, one per benchmark process (two may measure the same history side by side).
    scratch = f"bench_web_commits_{os.getpid()}"

    def close(self) -> None:
        if self._scratch:
            self.raw.execute(f"DROP TABLE IF EXISTS {self.scratch}")
        self.raw.close()


# Columns as the pages show them (runtracker.storage.runs), written out for the hand-written side.
RUN_LIST = ("id, pipeline, started_at, finished_at, duration_ms, outcome, total_created, total_updated,"
            " total_skipped, total_failed, started_by, ended_by, reaped_at")
RUN_ALL = ("id, club_slug, pipeline, started_at, finished_at, duration_ms, outcome, total_created, total_updated,"
           " total_skipped, total_failed, summary_json, hostname, pid, process_started_at, heartbeat_at, exit_code,"
           " process_key, reaped_at, reap_reason, ended_by, started_by, output_tail")
STEP_ALL = ("id, run_id, club_slug, step_name, started_at, finished_at, duration_ms, outcome, created_count,"
            " updated_count, skipped_count, failed_count, detail_json")
ERROR_ALL = ("e.id, e.run_id, e.run_step_id, e.step_name, e.member_identifier, e.error_message, e.error_stack,"
             " e.created_at")
NAMES = ("WITH RECURSIVE p(name) AS (SELECT MIN(pipeline) FROM runs UNION ALL SELECT (SELECT MIN(pipeline) FROM runs"
         " WHERE pipeline > p.name) FROM p WHERE p.name IS NOT NULL) SELECT name FROM p WHERE name IS NOT NULL")
STEPS = ("WITH RECURSIVE s(name) AS (SELECT MIN(step_name) FROM run_errors WHERE club_slug = 'rondo' UNION ALL"
         " SELECT (SELECT MIN(step_name) FROM run_errors WHERE club_slug = 'rondo' AND step_name > s.name) FROM s"
         " WHERE s.name IS NOT NULL) SELECT name FROM s WHERE name IS NOT NULL")
USER_ROW = "SELECT id, name, password_hash FROM users WHERE name = ?"
RUNNING = "SELECT COUNT(*) FROM runs WHERE outcome = 'running'"


def _pipeline_join(b: Backend) -> str:
    """A pipeline's runs newest first, each run's errors by its index: the loops in that order."""
    if b.dialect == "postgresql":
        return "runs r CROSS JOIN LATERAL (SELECT * FROM run_errors x WHERE x.run_id = r.id) AS e"
    return "runs r CROSS JOIN run_errors e ON e.run_id = r.id"


def frame(b: Backend) -> None:
    """What every logged-in page reads besides its content: the user (checked on every request) and the running
    count in its header."""
    b.query(USER_ROW, (USER,))
    b.query(RUNNING)


def hand_overview(b: Backend, ctx: dict[str, Any]) -> None:
    frame(b)
    names = [row[0] for row in b.query(NAMES)]
    part = f"SELECT * FROM (SELECT {RUN_LIST} FROM runs WHERE pipeline = ? ORDER BY started_at DESC, id DESC LIMIT 30)"
    b.query(" UNION ALL ".join(f"{part} AS t{i}" for i in range(len(names))), tuple(names))
    b.query("SELECT id, pipeline, started_at FROM runs WHERE outcome = 'running'")


def _hand_history(b: Backend, anchor: tuple[str, int] | None) -> None:
    frame(b)
    if anchor is None:
        rows = b.query(f"SELECT {RUN_LIST} FROM runs WHERE pipeline = ? ORDER BY started_at DESC, id DESC LIMIT 100",
                       (PIPELINE,))
    else:
        rows = b.query(f"SELECT {RUN_LIST} FROM runs WHERE pipeline = ? AND started_at <= ? AND (started_at < ? OR"
                       " id < ?) ORDER BY started_at DESC, id DESC LIMIT 100", (PIPELINE, anchor[0], *anchor))
    # The page's 20 runs and the chart's 100 are these; the slow flag's basis; the capped count; running or not.
    b.query("SELECT duration_ms FROM runs WHERE pipeline = ? AND outcome = 'success' AND started_at <= ?"
            " ORDER BY started_at DESC LIMIT 30", (PIPELINE, rows[0][2]))
    b.query("SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE pipeline = ? ORDER BY started_at DESC LIMIT 1001) AS t",
            (PIPELINE,))
    b.query("SELECT id, started_at FROM runs WHERE outcome = 'running' AND pipeline = ?", (PIPELINE,))


def hand_history_first(b: Backend, ctx: dict[str, Any]) -> None:
    _hand_history(b, None)


def hand_history_deep(b: Backend, ctx: dict[str, Any]) -> None:
    anchor = b.query("SELECT started_at, id FROM runs WHERE id = ?", (ctx["deep_before"],))[0]
    _hand_history(b, (anchor[0], anchor[1]))


def hand_run(b: Backend, ctx: dict[str, Any]) -> None:
    frame(b)
    run_id = ctx["run_id"]
    b.query(f"SELECT {RUN_ALL} FROM runs WHERE id = ?", (run_id,))
    b.query(f"SELECT {STEP_ALL} FROM run_steps WHERE run_id = ? ORDER BY id", (run_id,))
    # The first 100 errors (crash rows among them; the count is known when there are no more).
    errors = b.query(f"SELECT {ERROR_ALL} FROM run_errors e WHERE e.run_id = ? ORDER BY e.id LIMIT 101", (run_id,))
    if len(errors) > 100:
        b.query("SELECT COUNT(*) FROM (SELECT 1 FROM run_errors WHERE run_id = ? LIMIT 1001) AS t", (run_id,))


def _filters(b: Backend) -> None:
    """The error browser's pipeline and step selects."""
    b.query(NAMES)
    b.query(STEPS)


def hand_errors(b: Backend, ctx: dict[str, Any]) -> None:
    frame(b)
    b.query(f"SELECT {ERROR_ALL}, r.pipeline FROM run_errors e LEFT JOIN runs r ON r.id = e.run_id"
            " ORDER BY e.created_at DESC, e.id DESC LIMIT 51")
    b.query("SELECT COUNT(*) FROM (SELECT 1 FROM run_errors LIMIT 1001) AS t")
    _filters(b)


def hand_errors_pipeline(b: Backend, ctx: dict[str, Any]) -> None:
    frame(b)
    join = _pipeline_join(b)
    b.query(f"SELECT {ERROR_ALL}, r.pipeline, r.started_at FROM {join} WHERE r.pipeline = ?"
            " ORDER BY r.started_at DESC, r.id DESC, e.id DESC LIMIT 51", (PIPELINE,))
    b.query(f"SELECT COUNT(*) FROM (SELECT 1 FROM {join} WHERE r.pipeline = ?"
            " ORDER BY r.started_at DESC, r.id DESC LIMIT 1001) AS t", (PIPELINE,))
    _filters(b)


def hand_errors_text(b: Backend, ctx: dict[str, Any]) -> None:
    frame(b)
    b.query(f"SELECT {ERROR_ALL}, r.pipeline FROM run_errors e LEFT JOIN runs r ON r.id = e.run_id"
            " WHERE e.error_message LIKE ? ORDER BY e.created_at DESC, e.id DESC LIMIT 51", (f"%{TEXT}%",))
    _filters(b)


def hand_errors_pipeline_text(b: Backend, ctx: dict[str, Any]) -> None:
    frame(b)
    b.query(f"SELECT {ERROR_ALL}, r.pipeline, r.started_at FROM {_pipeline_join(b)} WHERE r.pipeline = ?"
            " AND e.error_message LIKE ? ORDER BY r.started_at DESC, r.id DESC, e.id DESC LIMIT 51",
            (PIPELINE, f"%{TEXT}%"))
    _filters(b)


def hand_groups(b: Backend, ctx: dict[str, Any]) -> None:
    frame(b)
    b.query("SELECT e.run_id, e.step_name, e.member_identifier, e.error_message, e.created_at, r.pipeline"
            " FROM run_errors e LEFT JOIN runs r ON r.id = e.run_id ORDER BY e.created_at DESC, e.id DESC LIMIT 2000")
    _filters(b)


def hand_member(b: Backend, ctx: dict[str, Any]) -> None:
    frame(b)
    # One read gives the page's 50 rows, the grouped view of the latest 1,000 and the capped count.
    b.query(f"SELECT {ERROR_ALL}, r.pipeline FROM run_errors e LEFT JOIN runs r ON r.id = e.run_id"
            " WHERE e.member_identifier = ? ORDER BY e.id DESC LIMIT 1001", (ctx["member"],))


def _hand_runs(b: Backend, ctx: dict[str, Any], outcome: str | None) -> None:
    """The runs page: a window's runs (of one outcome), newest first, and each outcome's capped count."""
    frame(b)
    since = ctx["night_since"]
    where = "outcome = ? AND started_at >= ?" if outcome else "started_at >= ?"
    b.query(f"SELECT {RUN_LIST} FROM runs WHERE {where} ORDER BY started_at DESC, id DESC LIMIT 51",
            (outcome, since) if outcome else (since,))
    parts = [f"SELECT '{o}', COUNT(*) FROM (SELECT 1 FROM runs WHERE outcome = ? AND started_at >= ? LIMIT 1001)"
             f" AS t{i}" for i, o in enumerate(("success", "failure", "running", "partial"))]
    parts.append("SELECT 'lost', COUNT(*) FROM (SELECT 1 FROM runs WHERE reaped_at IS NOT NULL AND started_at >= ?"
                 " LIMIT 1001) AS t4")
    b.query(" UNION ALL ".join(parts), ("success", since, "failure", since, "running", since, "partial", since, since))
    b.query(NAMES)


def hand_runs_night(b: Backend, ctx: dict[str, Any]) -> None:
    _hand_runs(b, ctx, None)


def hand_runs_failures(b: Backend, ctx: dict[str, Any]) -> None:
    _hand_runs(b, ctx, "failure")


# (key, label, path given the context, the hand-written SQL, a check of the page's HTML)
def pages(ctx: dict[str, Any]) -> list[tuple[str, str, str, Callable[[Backend, dict[str, Any]], None], str]]:
    member = ctx["member"]
    return [
        ("overview", f"overview ({CARDS} pipelines)", "/", hand_overview, 'data-testid="pipeline-card"'),
        ("overview_kept", "overview, nothing committed since the last request", "/", hand_overview,
         'data-testid="pipeline-card"'),
        ("overview_drawn", "overview, nothing committed, drawn again (a new second)", "/", hand_overview,
         'data-testid="pipeline-card"'),
        ("history_1", "history page 1", f"/pipeline/{PIPELINE}", hand_history_first, 'data-testid="history-row"'),
        ("history_deep", f"history page {ctx['deep_page']:,}", f"/pipeline/{PIPELINE}?before={ctx['deep_before']}",
         hand_history_deep, 'data-testid="history-row"'),
        ("run", "run detail", f"/run/{ctx['run_id']}", hand_run, 'id="run-summary"'),
        ("errors", "error browser, unfiltered", "/errors", hand_errors, 'data-testid="error-row"'),
        ("errors_pipeline", f"errors of pipeline {PIPELINE}", f"/errors?pipeline={PIPELINE}", hand_errors_pipeline,
         'data-testid="error-row"'),
        ("errors_text", f"errors with text {TEXT!r}", f"/errors?q={TEXT}", hand_errors_text,
         'data-testid="error-row"'),
        ("errors_pipeline_text", f"errors of {PIPELINE} with {TEXT!r}", f"/errors?pipeline={PIPELINE}&q={TEXT}",
         hand_errors_pipeline_text, 'data-testid="error-row"'),
        ("groups", "grouped errors (latest 2,000)", "/errors?view=groups", hand_groups, 'data-testid="error-group"'),
        ("member", f"member page ({ctx['member_errors']} errors)", f"/member/{quote(member, safe='')}", hand_member,
         'data-testid="error-row"'),
        ("runs_night", "runs page, the 14 h to the newest run", f"/runs?from={ctx['night_from']}", hand_runs_night,
         'data-testid="run-row"'),
        ("runs_failures", "runs page, its failures", f"/runs?outcome=failure&from={ctx['night_from']}",
         hand_runs_failures, 'data-testid="run-row"'),
    ]


CARDS = len(web_history.ALL_PIPELINES)
EXPECTED_ROWS = {"overview": CARDS, "overview_kept": CARDS, "overview_drawn": CARDS, "history_1": PAGE_SIZE,
                 "history_deep": PAGE_SIZE, "errors": 50,
                 "errors_pipeline": 50, "errors_text": 50, "errors_pipeline_text": 50}


def context(b: Backend, runs: int) -> dict[str, Any]:
    """Real values from the history: the deep page's cursor, a run, a member with many errors."""
    per_pipeline = b.query("SELECT COUNT(*) FROM runs WHERE pipeline = ?", (PIPELINE,))[0][0]
    deep_page = min(DEEP_PAGE, per_pipeline // PAGE_SIZE - 1)
    # Page N starts after the last run of page N - 1: the (N - 1) * 20th newest run.
    offset = (deep_page - 1) * PAGE_SIZE - 1
    deep_before = b.query("SELECT id FROM runs WHERE pipeline = ? ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET ?",
                          (PIPELINE, offset))[0][0]
    run_id = b.query("SELECT id FROM runs WHERE pipeline = ? AND outcome = 'failure' ORDER BY started_at DESC LIMIT 1",
                     (PIPELINE,))[0][0]
    member = b.query("SELECT member_identifier FROM run_errors WHERE member_identifier IS NOT NULL"
                     " ORDER BY id DESC LIMIT 1")[0][0]
    member_errors = b.query("SELECT COUNT(*) FROM run_errors WHERE member_identifier = ?", (member,))[0][0]
    # The runs page's window: the 14 hours up to the newest run (as "since 18:00 yesterday" is, at 08:00).
    newest = to_ms(b.query("SELECT MAX(started_at) FROM runs")[0][0]) or 0
    night_from = iso(newest - 14 * 3_600_000)[:16]
    return {"per_pipeline": per_pipeline, "deep_page": deep_page, "deep_before": deep_before, "run_id": run_id,
            "member": member, "member_errors": member_errors, "runs": runs, "night_from": night_from,
            "night_since": iso(to_ms(night_from + ":00.000Z") or 0)}


def check_deep_cursor(store: Any, ctx: dict[str, Any]) -> None:
    """Walk the keyset from page 1 to the deep page as the 'older' links do: it must land on the same cursor."""
    from runtracker.storage.dashboard import Dashboard

    dash = Dashboard(store)
    position = None
    for _ in range(ctx["deep_page"] - 1):
        rows = dash.history(PIPELINE, PAGE_SIZE + 1, position)
        position = (rows[PAGE_SIZE - 1]["started_at"], rows[PAGE_SIZE - 1]["id"])
    assert position is not None and position[1] == ctx["deep_before"], (position, ctx["deep_before"])


# -- measuring one backend ----------------------------------------------------------------------------------------
class Meter:
    """Sums the time of the store's reads (every query a page makes goes through Store.read)."""

    def __init__(self, store: Any) -> None:
        self.seconds = 0.0
        self.queries = 0
        original = store.read

        def read(sql: str, params: Any = ()) -> Any:
            began = time.perf_counter()
            try:
                return original(sql, params)
            finally:
                self.seconds += time.perf_counter() - began
                self.queries += 1

        store.read = read

    def reset(self) -> None:
        self.seconds, self.queries = 0.0, 0


class Traced:
    """Counts the hand-written side's statements."""

    def __init__(self, b: Backend) -> None:
        self.b = b
        self.count = 0
        self._query = b.query

        def query(text: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
            self.count += 1
            return self._query(text, params)

        b.query = query  # type: ignore[method-assign]

    def stop(self) -> None:
        self.b.query = self._query  # type: ignore[method-assign]


def ensure_user(store: Any) -> None:
    from runtracker.storage.auth import Auth

    auth = Auth(store)
    hashed = passwords.hash_password(PASSWORD)
    if not auth.add_user(USER, hashed):
        auth.set_password(USER, hashed)


def forget_user(url: str) -> None:
    from runtracker.storage.auth import Auth

    store = open_store(url)
    try:
        Auth(store).remove_user(USER)
    finally:
        store.close()


def config_file(workdir: Path) -> Path:
    """The history's config file (web_history.config_text): a command for each pipeline (Start buttons),
    schedules for 150, as a dashboard serving real pipelines would have."""
    path = workdir / "runtracker.toml"
    path.write_text(web_history.config_text())
    return path


STATUS = re.compile(rb'data-testid="pipeline-card"[^>]*?data-status="([^"]*)"')


def states(body: bytes) -> str:
    """The overview's cards by status, as its HTML says (`data-status`; overdue and too long as its lines),
    e.g. "145 success, 24 partial, …, 8 overdue"."""
    found: dict[str, int] = {}
    for match in STATUS.finditer(body):
        found[match.group(1).decode()] = found.get(match.group(1).decode(), 0) + 1
    for marker, what in ((b'data-testid="overdue"', "overdue"), (b'data-testid="too-long"', "too long")):
        if body.count(marker):
            found[what] = body.count(marker)
    return ", ".join(f"{n} {state}" for state, n in sorted(found.items(), key=lambda kv: -kv[1]))


async def measure_pages(b: Backend, ctx: dict[str, Any], plan: dict[str, Any], config: Path,
                        only: set[str] | None = None) -> dict[str, Any]:
    store = open_store(b.url)
    try:
        ensure_user(store)
        check_deep_cursor(store, ctx)
        meter = Meter(store)
        app = create_app(WebSettings(secret=SECRET, db=b.url, config_path=str(config)), store)

        def forget_pages() -> None:  # the pages Web.render_kept keeps (code before it has none: harmless)
            app.state.web._kept_pages = (0, {})
        cookie = await log_in(app)
        results: dict[str, Any] = {}
        for key, label, path, hand, marker in pages(ctx):
            if only and key not in only:
                continue
            say(f"  {b.dialect}: {label} ({path})")
            first = await asgi(app, "GET", path, cookie)
            assert first.status == 200, (path, first.status, first.body[:500])
            if key == "overview":
                ctx["states"] = states(first.body)
                say(f"    cards: {ctx['states']}")
            shown = first.body.count(marker.encode())
            assert shown >= 1, (path, marker)
            expected = EXPECTED_ROWS.get(key)
            if key == "member":
                expected = min(50, ctx["member_errors"])
            assert expected is None or shown == expected, (path, marker, shown, expected)
            traced = Traced(b)
            hand(b, ctx)
            traced.stop()
            meter.reset()
            # Before each request another connection commits (as pipelines do all day), so the page reads what
            # it shows; only "overview_kept" measures the overview on a database unchanged since its last read
            # (its reads kept, and the page itself for the rest of the second: `Web.render_kept`), and
            # "overview_drawn" the same with the page drawn again, as at the first request of a second.
            commit = {"overview_kept": lambda: None, "overview_drawn": forget_pages}.get(key, b.commit_elsewhere)
            for _ in range(plan["warmup"]):
                commit()
                await asgi(app, "GET", path, cookie)
                hand(b, ctx)
            queries = None
            server, db, raw, ratios = [], [], [], []
            for i in range(plan["requests"]):
                commit()
                meter.reset()
                if i % 2:
                    began = time.perf_counter()
                    hand(b, ctx)
                    hand_s = time.perf_counter() - began
                    answer = await asgi(app, "GET", path, cookie)
                else:
                    answer = await asgi(app, "GET", path, cookie)
                    began = time.perf_counter()
                    hand(b, ctx)
                    hand_s = time.perf_counter() - began
                assert answer.status == 200, (path, answer.status)
                queries = meter.queries
                server.append(answer.seconds)
                db.append(meter.seconds)
                raw.append(hand_s)
                ratios.append(meter.seconds / hand_s)
            results[key] = {
                "label": label, "path": path, "shown": shown, "bytes": len(first.body),
                "median_ms": statistics.median(server) * 1000, "p95_ms": p95(server) * 1000,
                "db_ms": statistics.median(db) * 1000, "hand_ms": statistics.median(raw) * 1000,
                "ratio": statistics.median(ratios), "queries": queries, "hand_queries": traced.count,
            }
            r = results[key]
            say(f"    {r['median_ms']:.2f} / {r['p95_ms']:.2f} ms; db {r['db_ms']:.2f} ms ({queries} queries) vs hand "
                f"{r['hand_ms']:.2f} ms ({traced.count}): {r['ratio']:.2f}x")
        # The one query the original dashboard took 187 ms for: is this pipeline running?
        from runtracker.storage.dashboard import Dashboard

        dash = Dashboard(store)
        times = []
        for _ in range(plan["requests"]):
            began = time.perf_counter()
            dash.running_run(PIPELINE)
            times.append(time.perf_counter() - began)
        results["is_running_ms"] = statistics.median(times) * 1000
        return results
    finally:
        store.close()


# -- the original dashboard's query shapes, with the original's indexes only ----------------------------------------
SEED_INDEXES = {"idx_runs_club_pipeline", "idx_run_steps_run_id", "idx_run_errors_run_id", "idx_run_errors_club_step"}


def original_queries(b: Backend, ctx: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median seconds of each shape, on the history with every index but the original tool's dropped (in a
    transaction rolled back at the end: nothing changes)."""
    since, until = "2000-01-01T00:00:00.000Z", "2100-01-01T00:00:00.000Z"  # the whole history's date range
    join = ("FROM run_errors e JOIN runs r ON r.id = e.run_id WHERE e.club_slug = 'rondo' AND e.created_at >= ?"
            " AND e.created_at < ?")
    shapes: dict[str, list[tuple[str, tuple[Any, ...]]]] = {
        "errors": [(f"SELECT COUNT(*) {join}", (since, until)),
                   (f"SELECT e.*, r.pipeline {join} ORDER BY e.created_at DESC LIMIT 50 OFFSET 0", (since, until))],
        "errors_pipeline": [
            (f"SELECT COUNT(*) {join} AND r.pipeline = ?", (since, until, PIPELINE)),
            (f"SELECT e.*, r.pipeline {join} AND r.pipeline = ? ORDER BY e.created_at DESC LIMIT 50 OFFSET 0",
             (since, until, PIPELINE))],
        "is_running": [("SELECT id FROM runs WHERE club_slug = 'rondo' AND pipeline = ? AND outcome = 'running'"
                        " ORDER BY started_at DESC LIMIT 1", (PIPELINE,))],
        "history_deep": [("SELECT * FROM runs WHERE club_slug = 'rondo' AND pipeline = ? ORDER BY started_at DESC"
                          " LIMIT 20 OFFSET ?", (PIPELINE, (ctx["deep_page"] - 1) * PAGE_SIZE))],
    }
    if b.dialect == "sqlite":
        names = [r[0] for r in b.query("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                                       " AND tbl_name IN ('runs', 'run_steps', 'run_errors')")]
        b.raw.execute("BEGIN")
    else:
        names = [r[0] for r in b.query(
            "SELECT i.indexname FROM pg_indexes i WHERE i.schemaname = current_schema()"
            " AND i.tablename IN ('runs', 'run_steps', 'run_errors') AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
            " WHERE c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)")]
        b.raw.execute("BEGIN")
        b.raw.execute("SET LOCAL statement_timeout = 0")
    dropped = sorted(n for n in names if n not in SEED_INDEXES)
    found: dict[str, float] = {}
    try:
        for name in dropped:
            b.raw.execute(f"DROP INDEX {name}")
        if b.dialect == "sqlite":
            b.raw.execute("ANALYZE sqlite_schema")  # the planner reloads what it knows of the indexes left
        for key, statements in shapes.items():
            times = []
            for _ in range(repeats + 1):  # the first warms the cache
                began = time.perf_counter()
                for sql, params in statements:
                    b.query(sql, params)
                times.append(time.perf_counter() - began)
            found[key] = statistics.median(times[1:]) * 1000
            say(f"  {b.dialect}: original shape {key}: {found[key]:.1f} ms")
    finally:
        b.raw.execute("ROLLBACK")
    found["dropped"] = dropped  # type: ignore[assignment]
    return found


# -- throughput over HTTP --------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def http(port: int, method: str, target: str, cookie: str | None = None, body: bytes = b"",
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, list[str]], bytes]:
    """One request on a fresh connection (setting up: login)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
                 f"Content-Length: {len(body)}"]
        if cookie:
            lines.append(f"Cookie: {COOKIE}={cookie}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    found: dict[str, list[str]] = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        found.setdefault(k.strip().lower(), []).append(v.strip())
    return int(status_line.split()[1]), found, rest


def _session(headers: dict[str, list[str]]) -> str | None:
    for value in headers.get("set-cookie", []):
        if value.startswith(f"{COOKIE}="):
            return value.split(";", 1)[0].split("=", 1)[1]
    return None


async def http_login(port: int) -> str:
    status, headers, body = await http(port, "GET", "/login")
    cookie = _session(headers)
    token = CSRF.search(body)
    assert status == 200 and cookie and token
    form = urlencode({"username": USER, "password": PASSWORD, "csrf_token": token.group(1).decode(), "next": "/"})
    status, headers, _ = await http(port, "POST", "/login", cookie, form.encode(),
                                    {"Content-Type": "application/x-www-form-urlencoded"})
    session = _session(headers)
    assert status == 303 and session, status
    return session


async def load(port: int, cookie: str, seconds: float, connections: int, warmup_s: float) -> dict[str, Any]:
    """`connections` keep-alive connections each sending GET / one after another for `seconds` (after
    `warmup_s`); every answer is read whole and checked."""
    request = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {COOKIE}={cookie}\r\n\r\n").encode()
    card = b'data-testid="pipeline-card"'
    latencies: list[float] = []
    bad: list[str] = []
    counting = False
    done = 0

    async def worker(stop_at: float) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                began = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                body = await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200") or body.count(card) != len(web_history.ALL_PIPELINES):
                    bad.append(head.split(b"\r\n", 1)[0].decode())
                if counting:
                    latencies.append(time.perf_counter() - began)
                    done += 1
        finally:
            writer.close()

    start = time.perf_counter()
    tasks = [asyncio.create_task(worker(start + warmup_s + seconds)) for _ in range(connections)]
    await asyncio.sleep(warmup_s)
    counting = True
    counted_from = time.perf_counter()
    cpu_from = time.process_time()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - counted_from
    client_cpu = time.process_time() - cpu_from
    return {"rps": done / elapsed, "requests": done, "seconds": elapsed, "bad": len(bad),
            "latency_median_ms": statistics.median(latencies) * 1000, "latency_p95_ms": p95(latencies) * 1000,
            "client_cpu_share": client_cpu / elapsed}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(b: Backend, config: Path, seconds: float) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "RUNTRACKER_WEB_SECRET": SECRET, "PYTHONPATH": str(SRC)}
    env.pop("RUNTRACKER_DB", None)
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([sys.executable, "-m", "runtracker", "serve", "--db", b.url, "--port", str(port),
                               "--config", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT,
                              cwd=tempfile.gettempdir())
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, _ = asyncio.run(http(port, "GET", "/health"))
                if status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"runtracker serve did not start: {log.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.2)

        async def run() -> dict[str, Any]:
            cookie = await http_login(port)
            cpu_before = _cpu_seconds(server.pid)
            found = await load(port, cookie, seconds, LOAD_CONNECTIONS, warmup_s=2.0)
            found["server_cpu_share"] = (_cpu_seconds(server.pid) - cpu_before) / (found["seconds"] + 2.0)
            return found

        found = asyncio.run(run())
        say(f"  {b.dialect}: overview over HTTP: {found['rps']:.0f} requests/s ({found['requests']} in "
            f"{found['seconds']:.1f} s, {LOAD_CONNECTIONS} connections; p50 {found['latency_median_ms']:.1f} ms, "
            f"p95 {found['latency_p95_ms']:.1f} ms; server {found['server_cpu_share']:.0%} of a core, load "
            f"generator {found['client_cpu_share']:.0%})")
        assert found["bad"] == 0, found
        return found
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


# -- the report ---------------------------------------------------------------------------------------------------
def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def report(mode: str, plan: dict[str, Any], facts: dict[str, str], results: dict[str, Any], elapsed: float) -> str:
    runs = plan["runs"]
    lines = [
        "## The dashboard (`make bench-web`)" + (" — QUICK MODE" if mode == "quick" else ""),
        "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} in {elapsed:.0f} s on: {facts['nproc']} cores "
        f"({facts['cpu']}), {facts['memory']} RAM, {facts['os']}, {facts['python']}, SQLite {facts['sqlite']}, "
        f"{facts.get('postgresql', 'PostgreSQL: not measured')} on the same machine over TCP to 127.0.0.1, disk "
        f"{facts['disk']}; load average {facts['load_before']} before, {facts['load_after']} after. The machine is "
        "shared with other work.",
        "",
        f"History (bench/web_history.py): {runs:,} runs, {runs * 2:,} steps, {runs * 5:,} errors over "
        f"{len(web_history.PIPELINES)} pipelines, 80 % of the runs in 12 busy ones "
        f"({results['context']['per_pipeline']:,} runs of {PIPELINE}), the rest in {len(web_history.OTHERS)} "
        f"others; with {len(web_history.NEVER_RAN)} that never ran, {CARDS} cards on the overview "
        f"({results['context'].get('states', '')}), with the config file of web_history.config_text (schedules "
        "for 150 pipelines in Europe/Amsterdam, a command for each); ANALYZEd. Server time: the ASGI "
        f"app called in-process with a logged-in session, {plan['warmup']} warm-up then {plan['requests']} "
        "requests per page, median / p95, each request after a commit by another connection (as pipelines "
        "commit all day), so that every page reads what it shows; the overview is also measured with nothing "
        "committed since its last request, when it reuses its reads (`Dashboard.unchanged`). "
        "Database time: the sum of the page's queries (Store.read: the "
        "session's user, the running count, the page's own); hand-written: the minimal SQL for the same page "
        "on a raw connection, alternating with each request; ratio: median of the per-request ratios.",
        "",
    ]
    for dialect, title in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        if dialect not in results:
            continue
        got = results[dialect]
        goal = GOAL_P95_MS[dialect]
        lines += [
            f"### {title} (goal: p95 ≤ {goal:g} ms, database time ≤ {GOAL_RATIO:g}× hand-written)",
            "",
            "| page | median | p95 | database | hand-written | ratio | queries (hand) | size |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for key, *_ in pages(results["context"][dialect]):
            if key not in got:
                continue
            r = got[key]
            lines.append(
                f"| {r['label']} | {r['median_ms']:.2f} ms | {r['p95_ms']:.2f} ms {_mark(r['p95_ms'] <= goal)} | "
                f"{r['db_ms']:.2f} ms | {r['hand_ms']:.2f} ms | {r['ratio']:.2f}× {_mark(r['ratio'] <= GOAL_RATIO)} | "
                f"{r['queries']} ({r['hand_queries']}) | {r['bytes'] / 1024:.0f} KiB |")
        lines.append("")
    if any("load" in results.get(d, {}) for d in ("sqlite", "postgresql")):
        lines += [
            f"### Overview throughput over HTTP (goal ≥ {GOAL_RPS:g} requests/s)",
            "",
            f"`runtracker serve` (uvicorn, one process) and a load generator in the benchmark's process (asyncio, "
            f"{LOAD_CONNECTIONS} keep-alive connections, raw HTTP/1.1, every answer checked: 200 and {CARDS} cards) "
            "on the "
            "same 2 cores: the generator's CPU is taken from the server's. Nothing commits during the run, so the "
            "overview reuses its reads (see the overview's two rows above for what a commit costs).",
            "",
            "| backend | requests/s | latency median / p95 | server CPU | load generator CPU |",
            "|---|---|---|---|---|",
        ]
        for dialect, title in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
            got = results.get(dialect, {}).get("load")
            if got:
                lines.append(f"| {title} | {got['rps']:.0f} {_mark(got['rps'] >= GOAL_RPS)} | "
                             f"{got['latency_median_ms']:.1f} / {got['latency_p95_ms']:.1f} ms | "
                             f"{got['server_cpu_share']:.0%} of a core | {got['client_cpu_share']:.0%} of a core |")
        lines.append("")
    if any("original" in results.get(d, {}) for d in ("sqlite", "postgresql")):
        lines += [
            "### For scale: the original dashboard's query shapes, with the original tool's indexes only",
            "",
            "The shapes the issue describes, written by us (the original's own SQL is not in this repository), on "
            "the same history with every index but the original tool's four dropped inside a transaction that is "
            f"rolled back; median of {plan['original_repeats']} after one warm-up. Beside them, ours: the page's "
            "server time (median), or the query alone.",
            "",
            "| what | original shape, SQLite | ours, SQLite | original shape, PostgreSQL | ours, PostgreSQL |",
            "|---|---|---|---|---|",
        ]
        deep_page = next(results["context"][d]["deep_page"] for d in ("sqlite", "postgresql")
                         if d in results["context"])
        rows = [
            ("error browser, unfiltered (COUNT(*) over the join + OFFSET page, whole date range)", "errors", "errors"),
            (f"error browser, pipeline {PIPELINE} (the same, `r.pipeline = ?`)", "errors_pipeline",
             "errors_pipeline"),
            ("is the pipeline running (outcome not in the index) — ours: the query alone", "is_running",
             "is_running_ms"),
            (f"history page {deep_page:,} (OFFSET) — ours: the whole page, keyset",
             "history_deep", "history_deep"),
        ]
        for label, original_key, ours_key in rows:
            cells = [label]
            for dialect in ("sqlite", "postgresql"):
                got = results.get(dialect, {})
                if "original" not in got:
                    cells += ["—", "—"]
                    continue
                ours = got[ours_key] if isinstance(got[ours_key], float) else got[ours_key]["median_ms"]
                cells += [f"{got['original'][original_key]:,.1f} ms", f"{ours:.2f} ms"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def summary_json(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": results["context"]["runs"]}
    for dialect in ("sqlite", "postgresql"):
        got = results.get(dialect)
        if not got:
            continue
        out[dialect] = {key: {"median_ms": round(got[key]["median_ms"], 2), "p95_ms": round(got[key]["p95_ms"], 2),
                              "db_ratio": round(got[key]["ratio"], 2)}
                        for key, *_ in pages(results["context"][dialect]) if key in got}
        if "load" in got:
            out[dialect]["overview_rps"] = round(got["load"]["rps"])
        if "original" in got:
            out[dialect]["original_ms"] = {k: round(v, 1) for k, v in got["original"].items() if k != "dropped"}
    return out


def _pg_version(url: str) -> str:
    from runtracker.storage.postgres import driver

    with driver().connect(url, autocommit=True) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 120,000-run history, fewer requests")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--requests", type=int, help="requests per page (default: 200, quick 40)")
    parser.add_argument("--skip", action="append", default=[], choices=("load", "original"),
                        help="leave out the HTTP throughput or the original's shapes")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    parser.add_argument("--page", action="append", default=[], help="measure only this page (its key; repeatable)")
    parser.add_argument("--pg-schema", default=web_history.PG_SCHEMA,
                        help="the PostgreSQL history's schema (default %(default)s; quick mode appends _quick)")
    parser.add_argument("--src", type=Path, default=SRC, help="the runtracker src/ to measure (default this one's)")
    args = parser.parse_args(argv)
    web_history.use_schema(args.pg_schema)
    # The history's `running` runs are another host's, whose heartbeats stopped when the history was built: a
    # reaper (the monitor, or serve's own) must not end them while the pages are measured.
    os.environ[HEARTBEAT_TIMEOUT_ENV] = str(web_history.HEARTBEAT_TIMEOUT_S)
    only = set(args.page)
    mode = "quick" if args.quick else "full"
    plan = dict(MODES[mode])
    if args.requests:
        plan["requests"] = args.requests
    if mode == "quick":
        web_history.use_schema(f"{web_history.PG_SCHEMA}_quick")  # the full history's schema is left alone
    began = time.perf_counter()
    facts = machine()
    facts["load_before"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    passwords.hasher()  # argon2 loaded before anything is timed
    results: dict[str, Any] = {"context": {"runs": plan["runs"]}}
    workdir = Path(tempfile.mkdtemp(prefix="bench-web-"))
    config = config_file(workdir)
    dialects = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    try:
        for dialect in dialects:
            if dialect == "sqlite":
                path = web_history.sqlite_history(plan["runs"], log=say)
                url, stamp = str(path), os.stat(path).st_mtime
            else:
                url, path, stamp = web_history.postgres_history(plan["runs"], log=say), None, None
                facts["postgresql"] = f"PostgreSQL {_pg_version(url)}"
            b = Backend(dialect, url, path)
            try:
                ctx = context(b, plan["runs"])
                results["context"][dialect] = ctx
                results["context"]["per_pipeline"] = ctx["per_pipeline"]
                say(f"{dialect}: {ctx}")
                results[dialect] = asyncio.run(measure_pages(b, ctx, plan, config, only))
                results["context"]["states"] = ctx.get("states", "")
                if "original" not in args.skip:
                    results[dialect]["original"] = original_queries(b, ctx, plan["original_repeats"])
                if "load" not in args.skip:
                    results[dialect]["load"] = throughput(b, config, plan["load_s"])
            finally:
                b.close()
                forget_user(url)
                if path is not None and stamp is not None:
                    os.utime(path, (stamp, stamp))  # the history cache goes by its file's age
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    facts["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    elapsed = time.perf_counter() - began
    text = report(mode, plan, facts, results, elapsed)
    print(text)
    if mode == "full" and args.backend == "both" and not args.no_write and not only and SRC == ROOT / "src":
        write_section("dashboard", text + "\n```json\n" + json.dumps(summary_json(results)) + "\n```")
        print("written to bench/RESULTS.md\n")
    print(json.dumps(summary_json(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
