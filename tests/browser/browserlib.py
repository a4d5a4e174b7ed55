"""Helpers for the browser tests: how Chromium is started, the dashboard as a real `runtracker serve` process,
and logging in. Fixtures that use these are in conftest.py; tests import `login` and the constants from here.

Chromium is Debian's (/usr/bin/chromium, installed by `make browser`), driven by Playwright: Playwright's own
browser download is not reachable from these machines.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from helpers import app_env, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"

# --no-sandbox: Chromium refuses to start as root without it (CI runs as root).
# The background-networking flags: without them Chromium's own connections (updates, sync, Google's hosts) are
# refused by the machines' closed network, many at a time.
# --disable-dev-shm-usage: a container's /dev/shm may be tiny (Debian's launcher means to add this flag itself
# when it is, but its check misreads some mount tables).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# What Playwright waits for at most (clicks, fills, locators), in milliseconds; the dashboard's start is waited
# for separately (DASHBOARD_START_TIMEOUT_S).
DEFAULT_TIMEOUT_MS = 15_000
DASHBOARD_START_TIMEOUT_S = 30.0

# The dashboard's login form, and the user `runtracker serve --demo` creates. Adapt these if the form changes.
USERNAME_FIELD = "#username"
PASSWORD_FIELD = "#password"
LOGIN_BUTTON = "button[type=submit]"
DEMO_USER = "demo"
DEMO_PASSWORD = "demo"


def login(page: Page, url: str, username: str = DEMO_USER, password: str = DEMO_PASSWORD) -> None:
    """Open `url` (the login page, or any page that leads to it), fill in the form and submit it.

    Waits for the page after submitting to load; the test asserts on where it landed.
    """
    page.goto(url)
    page.fill(USERNAME_FIELD, username)
    page.fill(PASSWORD_FIELD, password)
    page.click(LOGIN_BUTTON)
    page.wait_for_load_state()


# Straight to 127.0.0.1 whatever $http_proxy says.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Dashboard:
    """A running `runtracker serve`: `url` is its base URL (no trailing slash)."""

    url: str
    db_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        """Everything the server has printed so far (stdout and stderr together)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def start_dashboard(db_url: str, log_path: Path, *, extra_args: list[str] | None = None,
                    env: dict[str, str] | None = None,
                    timeout: float = DASHBOARD_START_TIMEOUT_S) -> Dashboard:
    """Start `runtracker serve --demo` on a free port and return once GET /health answers 200.

    The server's output goes to `log_path` (a file, so that a chatty server never blocks on a full pipe). If it
    exits before answering, or does not answer within `timeout` seconds, it is stopped and the failure shows
    its output.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "runtracker", "serve", "--db", db_url,
           "--host", "127.0.0.1", "--port", str(port), "--demo", *(extra_args or [])]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=app_env(db_url, env), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=log_path.parent)
    dashboard = Dashboard(url=f"http://127.0.0.1:{port}", db_url=db_url, proc=proc, log_path=log_path)

    def answered() -> str:
        if proc.poll() is not None:
            return "exited"
        try:
            with _NO_PROXY.open(dashboard.url + "/health", timeout=2) as response:
                return "healthy" if response.status == 200 else ""
        except (urllib.error.URLError, OSError):  # refused, reset, timed out, or an HTTP error status
            return ""

    what = f"GET {dashboard.url}/health from `{' '.join(cmd)}`"
    try:
        state = wait_until(answered, what, timeout=timeout, interval=0.1)
    except AssertionError as e:
        stop_dashboard(dashboard)
        raise AssertionError(f"{e}\n--- its output ---\n{dashboard.output()}") from None
    if state == "exited":
        raise AssertionError(f"{what}: the server exited with {proc.returncode} before answering;"
                             f" its output:\n{dashboard.output()}")
    return dashboard


def stop_dashboard(dashboard: Dashboard, timeout: float = 10) -> int | None:
    """Terminate the server (SIGTERM, then SIGKILL past `timeout` seconds); its exit code."""
    proc = dashboard.proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def chromium_missing_message() -> str:
    return (f"the browser tests need Debian's Chromium at {CHROMIUM}: run `make browser` as root, or"
            " `apt-get update && apt-get install -y chromium chromium-driver`")


def chromium_present() -> bool:
    return os.access(CHROMIUM, os.X_OK)
