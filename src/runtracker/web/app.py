"""The dashboard's ASGI app: `create_app(settings)` for uvicorn (`runtracker serve`) or a test client.

Starlette for routing, requests and responses; Jinja2 (autoescaping every value) for the pages; static files
from the package. The routes are listed here, the pages in `views`, the JSON API in `api`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings.web import WebSettings
from ..storage import Store
from . import api, ingest, views
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


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response (plain ASGI: no per-request task, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
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


def routes() -> list[Route | Mount]:
    return [
        Route("/", views.overview),
        Route("/login", views.login_page, methods=["GET"]),
        Route("/login", views.login_post, methods=["POST"]),
        Route("/logout", views.logout, methods=["POST"]),
        Route("/pipeline/{name:path}/start", views.start_post, methods=["POST"]),
        Route("/pipeline/{name:path}", views.pipeline),
        Route("/run/{run_id:int}", views.run_page),
        Route("/errors", views.errors),
        Route("/errors/clear", views.clear_confirm, methods=["GET"]),
        Route("/errors/clear", views.clear_post, methods=["POST"]),
        Route("/errors/{run_id:int}", views.run_errors),
        Route("/member/{identifier:path}", views.member),
        Route("/health", api.health),
        Route("/metrics", api.metrics_page),
        *ingest.routes(),
        Route("/api/pipelines", api.pipelines),
        Route("/api/pipeline/{name:path}/start", api.start_pipeline, methods=["POST"]),
        Route("/api/runs", api.runs),
        Route("/api/runs/{run_id:int}", api.run),
        Route("/api/errors", api.errors),
        Route("/api/errors/groups", api.error_groups),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]


def create_app(settings: WebSettings, store: Store | None = None) -> Starlette:
    """The dashboard on `settings.db` (or on `store`, already open)."""
    web = Web(settings, store)
    # The database away (a server restarting): 503 and Retry-After, with the security headers (outage.py).
    app = Starlette(routes=routes(), middleware=[Middleware(SecurityHeaders),
                                                 Middleware(DatabaseOutage, unavailable=web.store.unavailable)],
                    exception_handlers={HTTPException: http_error})
    app.state.web = web
    app.state.ingest = IngestState(app.state.web)
    return app
