"""The dashboard in a real browser: logging in and out, the overview's cards, the Start button, a crashed run's
crash panel, the running favicon and the page's self-refresh.

Each test runs its own `runtracker serve --demo` (the `dashboard` fixture) with a config file that gives
`sleepy` a command (so a Start button) and names `backup`, which never ran. The history is made through the
public API: runs of RunTracker in this process, and a real process that crashes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from browserdata import crashed_run, open_run, tracked_run
from browserlib import Dashboard, login
from playwright.sync_api import Locator, Page, expect

from helpers import BACKENDS, Db, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

# sleepy's command: it runs until the test creates the gate file (at most 2 minutes), so that the test, not
# the machine's speed, decides when the run ends.
GATED = """
import os, sys, time
deadline = time.monotonic() + 120
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.05)
print("let through" if os.path.exists(sys.argv[1]) else "gave up waiting")
"""


@pytest.fixture
def dashboard_args(tmp_path: Path, gate: Path) -> list[str]:
    script = tmp_path / "gated.py"
    script.write_text(GATED)
    command = json.dumps([sys.executable, str(script), str(gate)])
    config = tmp_path / "runtracker.toml"
    config.write_text(f'[pipelines.sleepy]\ncommand = {command}\n\n[pipelines.backup]\ntimeout = "1h"\n')
    return ["--config", str(config)]


def card(page: Page, pipeline: str) -> Locator:
    return page.locator(f'[data-testid=pipeline-card][data-pipeline="{pipeline}"]')


# -- logging in and out ---------------------------------------------------------------------------------------
def test_a_wrong_password_shows_the_error_and_stays_on_the_login_page(page: Page, dashboard: Dashboard) -> None:
    """A wrong password: the login form again, saying so, and no way in."""
    login(page, dashboard.url, password="not the password")
    expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    assert page.url.split("?")[0] == f"{dashboard.url}/login"
    expect(page.locator("#logout")).to_have_count(0)


def test_the_right_password_lands_on_the_overview(page: Page, dashboard: Dashboard) -> None:
    """demo / demo: the overview, with the user's name and a logout button in the header."""
    login(page, dashboard.url)
    assert page.url == f"{dashboard.url}/"
    expect(page.locator("h1")).to_have_text("Pipelines")
    expect(page.get_by_test_id("current-user")).to_have_text("demo")
    expect(page.locator("#logout")).to_be_visible()


def test_a_page_asked_for_before_logging_in_is_shown_after_it(page: Page, dashboard: Dashboard) -> None:
    """Opening /errors without a session leads to the login form, and logging in leads back to /errors."""
    login(page, f"{dashboard.url}/errors?member=KNVB1")
    assert page.url == f"{dashboard.url}/errors?member=KNVB1"
    expect(page.locator("#filter-member")).to_have_value("KNVB1")


def test_logging_out_ends_the_session(page: Page, dashboard: Dashboard) -> None:
    """Log out: back on the login form, and the overview asks for a login again."""
    login(page, dashboard.url)
    page.locator("#logout").click()
    expect(page.locator("#login-form")).to_be_visible()
    page.goto(f"{dashboard.url}/")
    expect(page.locator("#login-form")).to_be_visible()
    assert page.url.startswith(f"{dashboard.url}/login?next=")


# -- the overview ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dashboard_db_url", BACKENDS, indirect=True)
def test_the_overview_shows_a_card_per_pipeline_with_its_status(page: Page, dashboard: Dashboard) -> None:
    """A card for each pipeline that ran and each the config names, with the status of its last run (or
    running, or never ran), its counts, success rate and the running line."""
    db = dashboard.db_url
    for _ in range(3):
        tracked_run(db, "alpha")
    tracked_run(db, "beta", errors=[("sync", "KNVB1", "member KNVB1 not found")])
    tracked_run(db, "gamma", outcome="failure")
    delta = open_run(db, "delta")
    try:
        login(page, dashboard.url)
        cards = page.get_by_test_id("pipeline-card")
        expect(cards).to_have_count(6)
        assert sorted(cards.evaluate_all("cards => cards.map(c => c.dataset.pipeline)")) == [
            "alpha", "backup", "beta", "delta", "gamma", "sleepy"]
        expected = {"alpha": "success", "beta": "partial", "gamma": "failure", "delta": "running",
                    "backup": "never ran", "sleepy": "never ran"}
        for name, status in expected.items():
            expect(card(page, name)).to_have_attribute("data-status", status)
        # The badge is the pipeline's state (base.status): a partial run leaves it ok, with its first error shown.
        states = {"alpha": "ok", "beta": "ok", "gamma": "failing", "delta": "running", "backup": "never ran",
                  "sleepy": "never ran"}
        for name, state in states.items():
            expect(card(page, name).locator(".badge")).to_have_text(state)
        expect(card(page, "beta").get_by_test_id("why")).to_have_text("member KNVB1 not found")
        expect(card(page, "alpha").get_by_test_id("success-rate")).to_have_attribute("data-rate", "100")
        expect(card(page, "alpha").get_by_test_id("last-counts")).to_have_text(
            "created / updated / skipped / failed: 4 / 2 / 1 / 0")
        expect(card(page, "beta").get_by_test_id("last-counts")).to_contain_text("4 / 2 / 1 / 1")
        expect(card(page, "delta").get_by_test_id("running-line")).to_contain_text("running for")
        expect(card(page, "backup").get_by_test_id("last-run")).to_have_text("never ran")
        # Only a pipeline with a command has a Start button.
        expect(page.get_by_test_id("start-button")).to_have_count(1)
        expect(card(page, "sleepy").get_by_test_id("start-button")).to_be_enabled()
    finally:
        delta.end_run("success")


# -- Start ----------------------------------------------------------------------------------------------------
def test_start_runs_the_pipeline_and_its_button_stays_disabled_until_the_run_ends(
        page: Page, dashboard: Dashboard, gate: Path) -> None:
    """Start (confirmed): the card is running and its button disabled while the command runs, and enabled
    again, with the run's outcome, once it ended."""
    asked: list[str] = []

    def confirm(dialog) -> None:  # the Start form asks before it posts
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", confirm)
    login(page, dashboard.url)
    sleepy, button = card(page, "sleepy"), card(page, "sleepy").get_by_test_id("start-button")
    expect(button).to_be_enabled()

    button.click()

    expect(page.locator("#flash")).to_contain_text(re.compile(r"Started sleepy \(run \d+\)"))
    assert asked == ["Start sleepy now?"]
    expect(sleepy).to_have_attribute("data-status", "running")
    expect(button).to_be_disabled()
    expect(sleepy.get_by_test_id("running-line")).to_contain_text("running for")
    run_id = int(re.search(r"run (\d+)", page.locator("#flash").inner_text()).group(1))
    run = Db(dashboard.db_url).run(run_id)
    assert run["outcome"] == "running" and run["started_by"] == "dashboard:demo", run
    page.reload()  # still running after a reload: the button's state comes from the database
    expect(button).to_be_disabled()

    gate.touch()
    wait_until(lambda: Db(dashboard.db_url).run(run_id)["outcome"] != "running", "the started run to end")
    page.reload()  # rather than waiting for the 60 s self-refresh (tested below with a fake clock)

    expect(sleepy).to_have_attribute("data-status", "success")
    expect(button).to_be_enabled()
    expect(sleepy.get_by_test_id("running-line")).to_have_count(0)


# -- a crashed run --------------------------------------------------------------------------------------------
def test_a_crashed_run_shows_the_crash_panel_with_its_traceback(
        page: Page, dashboard: Dashboard, tmp_path: Path) -> None:
    """A process that died of an uncaught exception: from the overview to its history to the run, whose crash
    panel says how it died, in which step, with the traceback and the last log lines shown."""
    run_id = crashed_run(tmp_path / "app", dashboard.db_url, "crashy")
    login(page, dashboard.url)
    expect(card(page, "crashy")).to_have_attribute("data-status", "failure")
    card(page, "crashy").get_by_test_id("pipeline-link").click()
    row = page.locator(f'[data-testid=history-row][data-run-id="{run_id}"]')
    expect(row).to_have_attribute("data-outcome", "failure")
    row.get_by_role("link", name=f"#{run_id}").click()

    assert page.url == f"{dashboard.url}/run/{run_id}"
    panel = page.get_by_test_id("crash-panel")
    expect(panel).to_have_attribute("data-kind", "uncaught_exception")
    expect(panel.get_by_test_id("crash-kind")).to_contain_text("uncaught exception")
    expect(panel.get_by_test_id("crash-message")).to_contain_text("ValueError: member KNVB0012345: no birth date")
    expect(panel.get_by_test_id("crash-step")).to_have_text("sync-members")
    stack = panel.get_by_test_id("crash-stack")
    expect(stack).to_be_visible()
    expect(stack).to_contain_text("Traceback (most recent call last):")
    expect(stack).to_contain_text("in parse_member")
    expect(stack).to_contain_text("ValueError: member KNVB0012345: no birth date")
    log_lines = panel.get_by_test_id("crash-log")
    expect(log_lines).to_be_visible()
    expect(log_lines).to_contain_text("INFO sync: downloaded 120 members")
    expect(log_lines).to_contain_text("INFO sync: syncing member KNVB0012345")
    expect(log_lines).not_to_contain_text("Traceback")
    expect(page.get_by_test_id("step-row")).to_have_count(2)


# -- the running favicon and the self-refresh -------------------------------------------------------------------
def test_the_favicon_spins_while_a_run_is_running(page: Page, dashboard: Dashboard) -> None:
    """A running run: the favicon link says so and is drawn by the spinner; the header counts the run."""
    nikki = open_run(dashboard.db_url, "nikki")
    try:
        login(page, dashboard.url)
        favicon = page.locator("#favicon")
        expect(favicon).to_have_attribute("data-running", "1")
        expect(favicon).to_have_attribute("href", re.compile(r"^data:image/png;base64,"))
        expect(page.locator("#running-count")).to_have_text("1 running")
    finally:
        nikki.end_run("success")


def test_the_favicon_is_still_when_nothing_runs(page: Page, dashboard: Dashboard) -> None:
    """No run running: the plain favicon, and no count in the header."""
    tracked_run(dashboard.db_url, "nikki")
    login(page, dashboard.url)
    expect(page.locator("#favicon")).to_have_attribute("data-running", "0")
    expect(page.locator("#favicon")).to_have_attribute("href", "/static/favicon.svg")
    expect(page.locator("#running-count")).to_have_text("")


def test_the_self_refresh_shows_a_run_ended_and_stops_the_favicon(page: Page, dashboard: Dashboard) -> None:
    """A minute later (a fake clock) the page fetches itself: the card shows the run's outcome, the favicon
    stops spinning and the header's count goes, without a reload."""
    nikki = open_run(dashboard.db_url, "nikki")
    try:
        page.clock.install()
        login(page, dashboard.url)
        expect(card(page, "nikki")).to_have_attribute("data-status", "running")
        expect(page.locator("#favicon")).to_have_attribute("data-running", "1")
    finally:
        nikki.end_run("partial")
    page.evaluate("window.__not_reloaded = true")

    page.clock.fast_forward(60_000)

    expect(page.locator("body")).to_have_attribute("data-refreshed", re.compile(r"^\d+$"))
    expect(card(page, "nikki")).to_have_attribute("data-status", "partial")
    expect(page.locator("#favicon")).to_have_attribute("data-running", "0")
    expect(page.locator("#favicon")).to_have_attribute("href", "/static/favicon.svg")
    expect(page.locator("#running-count")).to_have_text("")
    assert page.evaluate("window.__not_reloaded") is True
