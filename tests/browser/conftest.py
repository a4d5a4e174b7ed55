"""Fixtures for tests in a real browser: Debian's Chromium driven by Playwright.

- `browser`: one Chromium per xdist worker, started with browserlib.CHROMIUM_ARGS by the first browser test and
  stopped when the worker's next test is outside tests/browser (see _Chromium for why). While it runs, the
  thread looks as if it were inside an asyncio loop: a browser test cannot call `asyncio.run()` itself (run
  asyncio work in a thread of its own).
- `context`, `page`: a fresh browser context (cookies, storage; 1280x800; the time zone UTC; `context_options`
  adds options such as `bypass_csp` or `timezone_id`) and a page in it, for each test; a failing test leaves a
  screenshot, failure.png, in its tmp_path.
- `served_page(html, path="/") -> url`: serves an HTML string from a throwaway HTTP server on 127.0.0.1.
- `dashboard`: a real `runtracker serve --demo` on a free port (browserlib.Dashboard: .url, .db_url, .proc),
  on the database `dashboard_db_url` gives (SQLite by default; both backends with
  `@pytest.mark.parametrize("dashboard_db_url", BACKENDS, indirect=True)`, or override that fixture in a module
  to take `db_url`), with `dashboard_args` added to its command line.
- `browserlib.login(page, url)` logs in as the demo user.

Every test here is marked `browser` and `subprocess` (below), so `make test-fast` leaves them out; `make test`
installs Chromium first (`make browser`). Without /usr/bin/chromium the tests fail and say what to install.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browserlib import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEFAULT_TIMEOUT_MS,
    Dashboard,
    chromium_missing_message,
    chromium_present,
    start_dashboard,
    stop_dashboard,
)

from helpers import drop_db_url, make_db_url

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: the test drives a real Chromium (tests/browser/, `make browser`)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Called with the whole session's items: mark only this directory's. Test modules here say
    # `pytestmark = [pytest.mark.browser, pytest.mark.subprocess]` too; this catches one that forgets.
    for item in items:
        if _in_here(item):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.subprocess)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Keep each phase's report on the item, so that fixtures can tell at teardown whether the test failed.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"_browser_report_{report.when}", report)


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(getattr(getattr(request.node, f"_browser_report_{when}", None), "failed", False)
               for when in ("setup", "call"))


class _Chromium:
    """Playwright and one Chromium, started by a worker's first browser test, stopped once its next test is not one.

    Not a session-scoped fixture: Playwright's sync API runs its asyncio loop in a greenlet of the calling thread,
    and while it is started, `asyncio.get_running_loop()` finds that loop everywhere in the thread, so any later
    test calling `asyncio.run()` fails ("cannot be called from a running event loop"). Stopping it when the
    worker leaves tests/browser keeps one Chromium for the browser tests and gives the rest of the suite a clean
    thread.
    """

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    def get(self) -> Browser:
        if self._browser is None:
            if not chromium_present():
                pytest.fail(chromium_missing_message(), pytrace=False)
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            try:
                self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                                 headless=True)
            except BaseException:
                self.close()
                raise
        return self._browser

    def close(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        try:
            if browser is not None:
                browser.close()
        finally:
            if playwright is not None:
                playwright.stop()


_CHROMIUM = _Chromium()


def _in_here(item: pytest.Item | None) -> bool:
    return item is not None and os.path.abspath(str(item.path)).startswith(HERE + os.sep)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield  # the test's fixtures (pages, contexts) are closed by now
    if not _in_here(nextitem):
        _CHROMIUM.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _CHROMIUM.close()


@pytest.fixture
def browser() -> Browser:
    """The worker's Chromium (kept from one browser test to the next; each test gets a context of its own)."""
    return _CHROMIUM.get()


@pytest.fixture
def context_options() -> dict[str, Any]:
    """Extra options for `browser.new_context` (e.g. `{"bypass_csp": True}`); override or parametrize it."""
    return {}


@pytest.fixture
def context(browser: Browser, context_options: dict[str, Any]) -> Iterator[BrowserContext]:
    # The browser's zone is UTC, not the machine's: the pages show times in the browser's zone (a test of
    # another zone says `timezone_id` in its context_options).
    ctx = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, "timezone_id": "UTC",
                                 **context_options})
    ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    pg = context.new_page()
    yield pg
    if _failed(request) and not pg.is_closed():
        shot = tmp_path / "failure.png"
        try:
            pg.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the page at {pg.url}: {shot}")
        except Exception as e:  # the page may be what broke; the test's own failure is what matters
            print(f"no screenshot of the failed page: {e!r}")


class _Pages(http.server.BaseHTTPRequestHandler):
    pages: dict[str, str]

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        html = self.pages.get(self.path.split("?", 1)[0])
        body = (html if html is not None else "<h1>not found</h1>").encode()
        self.send_response(200 if html is not None else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def served_page() -> Iterator[Callable[..., str]]:
    """`served_page(html, path="/")` serves `html` at `path` and returns its URL; one server per test."""
    pages: dict[str, str] = {}
    handler = type("Pages", (_Pages,), {"pages": pages})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="served_page", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def serve(html: str, path: str = "/") -> str:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        pages[path] = html
        return base + path

    try:
        yield serve
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def dashboard_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The database the `dashboard` fixture serves: SQLite, or each backend of a test marked
    `@pytest.mark.parametrize("dashboard_db_url", BACKENDS, indirect=True)`; a module may also override it (e.g.
    return `db_url`)."""
    url = make_db_url(getattr(request, "param", "sqlite"), tmp_path, request.node.name)
    try:
        yield url
    finally:
        drop_db_url(url)


@pytest.fixture
def dashboard_args() -> list[str]:
    """Extra arguments for `runtracker serve`; override in a module or with indirect parametrization."""
    return []


@pytest.fixture
def dashboard(dashboard_db_url: str, dashboard_args: list[str], tmp_path: Path,
              request: pytest.FixtureRequest) -> Iterator[Dashboard]:
    """`runtracker serve --db <url> --host 127.0.0.1 --port <free> --demo`, answering GET /health.

    Log in with `browserlib.login(page, dashboard.url)` (demo/demo). If the test fails, teardown prints the
    server's output.
    """
    server = start_dashboard(dashboard_db_url, tmp_path / "dashboard" / "serve.log", extra_args=dashboard_args)
    try:
        yield server
    finally:
        code = stop_dashboard(server)
        if _failed(request):
            print(f"--- runtracker serve (exit code {code}) output ---\n{server.output()}")


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """The file that lets a gated test command end (it waits for it to exist); created at teardown whatever
    happened, so no command lingers."""
    path = tmp_path / "gate"
    yield path
    path.touch()
