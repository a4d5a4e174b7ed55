"""The database goes away under the dashboard (a PostgreSQL restart): every request answers 503 with a clear
page (JSON under /api/) and `Retry-After`, instead of a 500 and a traceback in the log per request. The
outage is logged once when it starts and once when a request succeeds again.

Plain ASGI, inside `SecurityHeaders` (so the 503 has every header) and outside Starlette's exception
middleware, which passes on what it has no handler for: here the backend's `Store.unavailable` errors.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from html import escape

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..base.clock import now_ms

log = logging.getLogger("runtracker.web")

RETRY_AFTER_S = 5
TITLE = "The database is unreachable"
MESSAGE = ("The dashboard cannot reach its database right now (a restart, or the server is away). Nothing is "
           "lost: pipelines keep running and write what they can when it is back. Try again in a few seconds.")
PLAIN_PAGE = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{TITLE}</title></head>"
              f"<body><h1>{TITLE}</h1><p id=\"message\">{escape(MESSAGE)}</p></body></html>")


class DatabaseOutage:
    """Answers 503 for the database's `unavailable` errors; logs an outage's start and end, once each."""

    def __init__(self, app: ASGIApp, unavailable: tuple[type[Exception], ...] = ()) -> None:
        self.app = app
        self.unavailable = unavailable
        self.lock = threading.Lock()
        self.since: float | None = None  # time.monotonic() of the outage's first failed request
        self.failed = 0  # requests answered 503 in this outage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.unavailable:
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if self.since is not None and message["status"] < 500:
                    self._back()
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except self.unavailable as exc:
            if started:  # part of the answer went out already: nothing better to send
                raise
            self._away(exc)
            await self._answer(scope, send)

    def _away(self, exc: Exception) -> None:
        with self.lock:
            self.failed += 1
            if self.since is not None:
                return
            self.since = time.monotonic()
        first = (str(exc).splitlines() or [""])[0]
        log.error("runtracker: the database is unreachable (%s: %s); answering 503 until it is back",
                  type(exc).__name__, first)

    def _back(self) -> None:
        with self.lock:
            if self.since is None:
                return
            lasted, failed, self.since, self.failed = time.monotonic() - self.since, self.failed, None, 0
        log.warning("runtracker: the database answers again after %.1f s; %d request(s) were answered 503",
                    lasted, failed)

    async def _answer(self, scope: Scope, send: Send) -> None:
        if str(scope.get("path", "")).startswith("/api/"):
            body = json.dumps({"error": "database unavailable", "retry_after": RETRY_AFTER_S}).encode()
            kind = b"application/json"
        else:
            body = page(scope).encode()
            kind = b"text/html; charset=utf-8"
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                                (b"retry-after", str(RETRY_AFTER_S).encode())]})
        await send({"type": "http.response.body", "body": body})


def page(scope: Scope) -> str:
    """The dashboard's own message page, built without the database (no user, no session); the plain page if
    even that fails."""
    try:
        web = scope["app"].state.web
        return str(web.templates.get_template("message.html").render(
            request_path=scope.get("path", "/"), user=None, csrf="", running_count=0, flash=None,
            demo=web.settings.demo, now=now_ms(), title=TITLE, message=MESSAGE))
    except Exception:
        return PLAIN_PAGE
