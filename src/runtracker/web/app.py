"""The dashboard's ASGI app: `create_app(settings)` for uvicorn (`runtracker serve`) or a test client.

Starlette for routing, requests and responses; Jinja2 (autoescaping every value) for the pages; static files
from the package. The routes are listed here, the pages in `views`, the JSON API in `api`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings.web import WebSettings
from ..storage import Store
from . import account, alert_history, api, apidocs, ingest, runlist, views
from .core import HERE, Web, api_error, web_of
from .ingest_http import IngestState
from .outage import DatabaseOutage

# Scripts and styles from this site only, no inline script, no framing: stored text that slipped through as
# markup still could not run.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


# Pages and API answers hold what only a logged-in user may see (and the login form its CSRF token): no browser
# or proxy cache keeps them, so the back button after logout or a shared proxy shows nothing. Static files
# are the same for everyone and may be cached.
NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response, and `Cache-Control: no-store` to every one but a static file
    (plain ASGI: no per-request task, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        cacheable = scope["path"].startswith("/static/") or scope["path"] == FAVICON_PATH

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + SECURITY_HEADERS
                if not cacheable:
                    headers = [h for h in headers if h[0].lower() != b"cache-control"] + [NO_STORE]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if request.url.path.startswith("/api/"):
        return api_error(status, "not found" if status == 404 else str(getattr(exc, "detail", "error")))
    web = web_of(request)
    user = web.user(request)
    title = views.NOT_FOUND if status == 404 else f"Error {status}"
    message = "there is no such page" if status == 404 else str(getattr(exc, "detail", ""))
    return web.render(request, "message.html", {"title": title, "message": message}, status, user)


# Browsers, bookmarks and link previews ask for /favicon.ico whatever the page's <link rel="icon"> says: the
# icon (favicon.svg drawn at 16, 32 and 48 px), to anyone, like /static/.
FAVICON_PATH = "/favicon.ico"


def favicon(request: Request) -> Response:
    return FileResponse(HERE / "static" / "favicon.ico", media_type="image/x-icon")


def routes() -> list[Route | Mount]:
    return [
        Route("/", views.overview),
        Route("/login", views.login_page, methods=["GET"]),
        Route("/login", views.login_post, methods=["POST"]),
        Route("/logout", views.logout, methods=["POST"]),
        Route("/pipeline/{name:path}/start", views.start_post, methods=["POST"]),
        Route("/pipeline/{name:path}", views.pipeline),
        Route("/runs", runlist.runs_page),
        Route("/run/{run_id:id}", views.run_page),
        Route("/run/{run_id:id}/summary.json", views.run_summary_json),
        Route("/errors", views.errors),
        Route("/errors/clear", views.clear_confirm, methods=["GET"]),
        Route("/errors/clear", views.clear_post, methods=["POST"]),
        Route("/errors/{run_id:id}", views.run_errors),
        Route("/member/{identifier:path}", views.member),
        Route("/alerts", alert_history.alerts_page),
        Route(FAVICON_PATH, favicon),
        Route("/docs/api", apidocs.api_docs),
        Route("/account", account.account, methods=["GET"]),
        Route("/account/timezone", account.timezone_post, methods=["POST"]),
        Route("/health", api.health),
        Route("/metrics", api.metrics_page),
        *ingest.routes(),
        Route("/api/pipelines", api.pipelines),
        Route("/api/pipeline/{name:path}/start", api.start_pipeline, methods=["POST"]),
        Route("/api/runs", api.runs),
        Route("/api/runs/{run_id:id}", api.run),
        Route("/api/errors", api.errors),
        Route("/api/errors/groups", api.error_groups),
        Route("/api/alerts", api.alerts),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]


class Dashboard(Starlette):
    """Starlette with SecurityHeaders outside everything: middleware given to Starlette sits inside its
    ServerErrorMiddleware, so a 500 would go out without the headers every other response has."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


def create_app(settings: WebSettings, store: Store | None = None) -> Starlette:
    """The dashboard on `settings.db` (or on `store`, already open)."""
    web = Web(settings, store)
    # The database away (a server restarting): 503 and Retry-After (outage.py); SecurityHeaders, outside
    # everything (Dashboard), puts the headers on it too.
    app = Dashboard(routes=routes(), middleware=[Middleware(DatabaseOutage, unavailable=web.store.unavailable)],
                    exception_handlers={HTTPException: http_error})
    app.state.web = web
    app.state.ingest = IngestState(app.state.web)
    return app
