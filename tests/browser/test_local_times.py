"""Times in the reader's zone, in a real Chromium whose zone Playwright sets (`timezone_id`): the page's script
hands the browser's zone to the server, a page first seen in another zone is loaded again in the browser's,
a user's own zone wins over it, and without JavaScript the pages are in the configured zone.

The server's zone is New York (`[dashboard] timezone`); the browser's is Tokyo; the run started at 01:15 UTC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browserlib import Dashboard, login
from playwright.sync_api import BrowserContext, Page, expect

from runtracker.storage import open_store
from runtracker.storage.auth import Auth

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

START = "2026-03-29T01:15:00.000Z"
END = "2026-03-29T01:20:30.000Z"
TOKYO = "2026-03-29 10:15:00 JST"
NEW_YORK = "2026-03-28 21:15:00 EDT"
AMSTERDAM = "2026-03-29 03:15:00 CEST"


@pytest.fixture
def context_options() -> dict[str, Any]:
    return {"timezone_id": "Asia/Tokyo"}


@pytest.fixture
def dashboard_args(tmp_path: Path) -> list[str]:
    config = tmp_path / "runtracker.toml"
    config.write_text('[dashboard]\ntimezone = "America/New_York"\n')
    return ["--config", str(config)]


@pytest.fixture
def run_id(dashboard: Dashboard) -> int:
    store = open_store(dashboard.db_url)
    try:
        with store.transaction() as cur:
            return store.insert_returning_id(
                cur, "INSERT INTO runs (pipeline, started_at, finished_at, duration_ms, outcome)"
                     " VALUES (?, ?, ?, ?, ?)",
                ("nikki", START, END, 330_000, "success"))
    finally:
        store.close()


def zone_cookie(context: BrowserContext) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == "runtracker_tz"), None)


def test_a_run_is_shown_in_the_browsers_zone_with_utc_in_the_tooltip(page: Page, context: BrowserContext,
                                                                      dashboard: Dashboard, run_id: int) -> None:
    """Logged in from Tokyo: the run's start in Tokyo time, its exact UTC time as the tooltip, the footer naming
    the browser's zone; the relative time's tooltip has both."""
    login(page, dashboard.url)
    assert zone_cookie(page.context) == "Asia/Tokyo"
    page.goto(f"{dashboard.url}/run/{run_id}")
    started = page.get_by_test_id("run-started").locator("time").first
    expect(started).to_have_text(TOKYO)
    expect(started).to_have_attribute("title", "2026-03-29 01:15:00.000 UTC")
    expect(page.get_by_test_id("run-started").locator("time").nth(1)).to_have_attribute(
        "title", f"{TOKYO} · 2026-03-29 01:15:00.000 UTC")
    expect(page.get_by_test_id("display-zone")).to_contain_text("Times in Asia/Tokyo (your browser's zone)")


def test_a_page_first_seen_in_the_servers_zone_is_loaded_again_in_the_browsers(
        page: Page, context: BrowserContext, dashboard: Dashboard, run_id: int) -> None:
    """Without the cookie the server answers in New York time; the script sets the cookie and loads the page
    once more, now in Tokyo time (and not again: the page stays)."""
    login(page, dashboard.url)
    context.clear_cookies(name="runtracker_tz")
    page.goto(f"{dashboard.url}/run/{run_id}")
    expect(page.get_by_test_id("run-started").locator("time").first).to_have_text(TOKYO)
    assert zone_cookie(context) == "Asia/Tokyo"
    page.evaluate("window.stillHere = true")  # a further reload would lose it
    expect(page.get_by_test_id("display-zone")).to_contain_text("your browser's zone")
    assert page.evaluate("window.stillHere") is True


def test_a_users_own_zone_wins_over_the_browsers(page: Page, dashboard: Dashboard, run_id: int) -> None:
    """`runtracker user timezone demo Europe/Amsterdam`: Amsterdam time in a browser in Tokyo."""
    login(page, dashboard.url)
    store = open_store(dashboard.db_url)
    try:
        assert Auth(store).set_timezone("demo", "Europe/Amsterdam")
    finally:
        store.close()
    page.goto(f"{dashboard.url}/run/{run_id}")
    expect(page.get_by_test_id("run-started").locator("time").first).to_have_text(AMSTERDAM)
    expect(page.get_by_test_id("display-zone")).to_contain_text("Times in Europe/Amsterdam (your own setting)")


@pytest.mark.parametrize("context_options", [{"timezone_id": "Asia/Tokyo", "java_script_enabled": False}])
def test_without_javascript_the_pages_are_in_the_configured_zone(page: Page, context: BrowserContext,
                                                                 dashboard: Dashboard, run_id: int) -> None:
    """No script, no cookie: the server's zone, New York, named in the footer."""
    login(page, dashboard.url)
    page.goto(f"{dashboard.url}/run/{run_id}")
    expect(page.get_by_test_id("run-started").locator("time").first).to_have_text(NEW_YORK)
    expect(page.get_by_test_id("display-zone")).to_contain_text("Times in America/New_York (the dashboard's setting)")
    assert zone_cookie(context) is None
