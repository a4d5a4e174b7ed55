"""The alert history in a real browser: `runtracker serve --demo --monitor` raises a real failed run's alert and
sends it to a webhook receiver that takes it and to one that answers 500. The operator opens Alerts from the nav,
sees the event, the run, each channel's delivery and why one did not arrive, filters by delivery state, and finds
the same alert on the pipeline's page, whose link leads back to the pipeline's alerts."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browserlib import Dashboard, free_port, login
from playwright.sync_api import Page, expect

from helpers import Db, open_fresh, run_app, wait_until
from runtracker.storage.alerts import AlertStore

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

FAILING = """
from runtracker import RunTracker
tracker = RunTracker("nikki")
tracker.start_run()
tracker.record_error(step_name="sync", error_message="member not found")
tracker.end_run("failure")
"""


class Hook:
    """A webhook receiver on localhost answering `status`; `types` are the Apprise types it received."""

    def __init__(self, status: int) -> None:
        self.types: list[str] = []
        types = self.types

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                types.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))["type"])
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def hooks() -> Iterator[tuple[Hook, Hook]]:
    good, broken = Hook(200), Hook(500)
    yield good, broken
    good.close()
    broken.close()


@pytest.fixture
def dashboard_args(tmp_path: Path, hooks: tuple[Hook, Hook]) -> list[str]:
    config = tmp_path / "runtracker.toml"
    config.write_text(f'[pipelines.nikki]\ndisplay_name = "Nikki sync"\n\n[alerts.channels]\n'
                      f'hook = "{hooks[0].url()}"\nbroken = "{hooks[1].url()}"\n')
    return ["--config", str(config), "--monitor"]


def _monitor_started(db_url: str) -> bool:
    store = open_fresh(db_url)
    try:
        return AlertStore(store).mark("runs") is not None
    finally:
        store.close()


def _attempts_recorded(db_url: str) -> bool:
    store = open_fresh(db_url)
    try:
        found = {d["channel"]: d for d in AlertStore(store).deliveries()}
    finally:
        store.close()
    return len(found) == 2 and found["hook"]["status"] == "sent" and found["broken"]["last_error"] is not None


def test_the_operator_sees_which_channel_got_the_alert_and_why_the_other_did_not(
        page: Page, dashboard: Dashboard, hooks: tuple[Hook, Hook], tmp_path: Path) -> None:
    """Alerts (nav) → the failed run's alert: hook delivered, broken retrying with HTTP 500; the state filter keeps
    it; the run link opens the run; the pipeline's page lists it and links to its alerts."""
    good, broken = hooks
    wait_until(lambda: _monitor_started(dashboard.db_url), "the monitor's first pass in the dashboard's process")
    assert run_app(tmp_path, FAILING, dashboard.db_url).returncode == 0
    run_id = Db(dashboard.db_url).run()["id"]
    wait_until(lambda: _attempts_recorded(dashboard.db_url), "the delivery and the failed attempt recorded")
    assert good.types == ["failure"] and broken.types[:1] == ["failure"]

    login(page, dashboard.url)
    page.click("#nav-alerts")
    expect(page).to_have_title("Alerts · runtracker")
    row = page.locator('[data-testid=alert-row][data-event=failed]')
    expect(row).to_have_count(1)
    expect(row.locator("[data-testid=alert-event]")).to_have_text("failed")
    expect(row.locator("[data-testid=alert-run]")).to_have_text(f"#{run_id}")
    expect(row.locator("td.message")).to_have_text(f"Nikki sync: run {run_id} failed")
    expect(row.locator('[data-testid=delivery][data-channel=hook] [data-testid=delivery-state]')).to_have_text(
        "delivered")
    retrying = row.locator("[data-testid=delivery][data-channel=broken]")
    expect(retrying.locator("[data-testid=delivery-state]")).to_have_text("retrying")
    expect(retrying.locator("[data-testid=delivery-reason]")).to_contain_text("error=500")
    expect(retrying.locator("[data-testid=channel-url]")).to_have_text(
        f"json://127.0.0.1:{broken.server.server_address[1]}/***")

    page.select_option("#filter-state", "delivered")
    page.click("#filter-apply")
    expect(page.locator("[data-testid=alert-row]")).to_have_count(1)  # the alert has a delivered delivery too
    page.select_option("#filter-state", "failed")
    page.click("#filter-apply")
    expect(page.locator("#no-alerts")).to_have_text("No alerts match these filters.")
    page.click("#filter-reset")
    page.click("[data-testid=alert-run]")
    expect(page).to_have_url(f"{dashboard.url}/run/{run_id}")

    page.goto(f"{dashboard.url}/pipeline/nikki")
    recent = page.locator("[data-testid=recent-alerts] [data-testid=alert-row]")
    expect(recent).to_have_count(1)
    expect(recent.locator("[data-testid=delivery][data-channel=broken]")).to_have_attribute("data-state",
                                                                                               "retrying")
    page.click("#all-alerts-link")
    expect(page).to_have_url(f"{dashboard.url}/alerts?pipeline=nikki")
    expect(page.locator("#filter-pipeline")).to_have_value("nikki")
    expect(page.locator("[data-testid=alert-row]")).to_have_count(1)
