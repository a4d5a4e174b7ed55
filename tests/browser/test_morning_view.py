"""The overview as the morning view, in a real browser: display names on the cards, an overdue pipeline's badge,
200 pipelines with the failing ones first and the summary's counts right, the compact list view (remembered,
and within a phone's width), and a run started from the dashboard whose end shows without the 60 s wait.

Each test runs its own `runtracker serve --demo` (the `dashboard` fixture) with this module's config file:
`sleepy` has a command that runs until the test lets it end (the gate file), `nikki` a display name and a
description, `hourly` an hourly schedule (one minute's grace).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from browserdata import add_run, tracked_run
from browserlib import Dashboard, login
from playwright.sync_api import Locator, Page, expect

from helpers import BACKENDS, Db, open_fresh, wait_until
from runtracker.base.clock import now_ms

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

GATED = """
import os, sys, time
deadline = time.monotonic() + 120
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.05)
"""
HOUR_MS = 3600_000
FAST_REFRESH_S = 5  # web.views.FAST_REFRESH_S: the overview's refresh while a pipeline runs


@pytest.fixture
def dashboard_args(tmp_path: Path, gate: Path) -> list[str]:
    script = tmp_path / "gated.py"
    script.write_text(GATED)
    command = json.dumps([sys.executable, str(script), str(gate)])
    config = tmp_path / "runtracker.toml"
    config.write_text(f"""
[pipelines.sleepy]
command = {command}

[pipelines.nikki]
display_name = "Leden → Nikki"
description = "Members from Sportlink to Nikki, every night."

[pipelines.hourly]
schedule = "0 * * * *"
grace = "1m"
""")
    return ["--config", str(config)]


def card(page: Page, pipeline: str) -> Locator:
    return page.locator(f'[data-testid=pipeline-card][data-pipeline="{pipeline}"]')


def background(locator: Locator) -> str:
    return locator.evaluate("el => getComputedStyle(el).backgroundColor")


# -- defect 3: display names and descriptions ------------------------------------------------------------------
def test_display_names_and_descriptions_are_on_the_cards_and_the_pipeline_page(page: Page,
                                                                                dashboard: Dashboard) -> None:
    """nikki's card links by its display name, shows its name beside it and its description; so does its page.
    A pipeline without a display name is shown by its name alone."""
    tracked_run(dashboard.db_url, "nikki")
    login(page, dashboard.url)
    nikki = card(page, "nikki")
    expect(nikki.get_by_test_id("pipeline-link")).to_have_text("Leden → Nikki")
    expect(nikki.get_by_test_id("pipeline-name")).to_have_text("nikki")
    expect(nikki.get_by_test_id("pipeline-name")).to_be_visible()
    expect(nikki.get_by_test_id("description")).to_have_text("Members from Sportlink to Nikki, every night.")
    expect(card(page, "sleepy").get_by_test_id("pipeline-link")).to_have_text("sleepy")
    expect(card(page, "sleepy").get_by_test_id("pipeline-name")).to_have_count(0)

    nikki.get_by_test_id("pipeline-link").click()

    expect(page.locator("h1")).to_contain_text("Leden → Nikki")
    expect(page.get_by_test_id("pipeline-name")).to_have_text("nikki")
    expect(page.get_by_test_id("pipeline-description")).to_have_text("Members from Sportlink to Nikki, every night.")


# -- states -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dashboard_db_url", BACKENDS, indirect=True)
def test_an_overdue_pipeline_has_the_overdue_badge_in_a_colour_of_its_own(page: Page, dashboard: Dashboard) -> None:
    """hourly last ran 3 h ago: its badge says overdue, in a colour that is neither ok's nor failing's; the
    summary counts it and its link shows it alone."""
    store = open_fresh(dashboard.db_url)
    try:
        add_run(store, "hourly", now_ms() - 3 * HOUR_MS)
        add_run(store, "fine", now_ms() - HOUR_MS)
        add_run(store, "broken", now_ms() - HOUR_MS, outcome="failure", errors=[("sync", "KNVB1", "no e-mail")])
    finally:
        store.close()
    login(page, dashboard.url)
    badge = card(page, "hourly").get_by_test_id("state-badge")
    expect(badge).to_have_text("overdue")
    expect(card(page, "hourly")).to_have_attribute("data-state", "overdue")
    expect(card(page, "hourly").get_by_test_id("overdue")).to_contain_text("Overdue since")
    expect(card(page, "fine").get_by_test_id("state-badge")).to_have_text("ok")
    expect(card(page, "broken").get_by_test_id("state-badge")).to_have_text("failing")
    expect(card(page, "broken").get_by_test_id("why")).to_have_text("no e-mail")
    colours = {background(card(page, name).get_by_test_id("state-badge")) for name in ("hourly", "fine", "broken")}
    assert len(colours) == 3, colours
    # Readable: the badge's text is not drawn in its background's colour (the overdue line's colour is the same).
    assert badge.evaluate("el => getComputedStyle(el).color") != background(badge)

    page.locator('[data-testid=summary-count][data-state="overdue"]').click()

    expect(page.get_by_test_id("pipeline-card")).to_have_count(1)
    expect(card(page, "hourly")).to_be_visible()


@pytest.fixture
def two_hundred(dashboard: Dashboard) -> dict[str, list[str]]:
    """200 pipelines, "pipeline 1" to "pipeline 200": every 29th failed last (6), the rest ran fine."""
    store = open_fresh(dashboard.db_url)
    names: dict[str, list[str]] = {"failing": [], "ok": []}
    try:
        start = now_ms() - HOUR_MS
        for i in range(1, 201):
            name = f"pipeline {i}"
            failed = i % 29 == 0
            add_run(store, name, start - 2 * HOUR_MS)
            add_run(store, name, start, outcome="failure" if failed else "success",
                    errors=[("sync", f"KNVB{i}", f"member KNVB{i}: no e-mail address")] if failed else ())
            names["failing" if failed else "ok"].append(name)
    finally:
        store.close()
    return names


@pytest.mark.parametrize("dashboard_db_url", BACKENDS, indirect=True)
def test_two_hundred_pipelines_failing_first_and_the_summary_counts_right(
        page: Page, dashboard: Dashboard, two_hundred: dict[str, list[str]]) -> None:
    """The six failing pipelines lead, in natural order (29 before 58 before 116); the summary counts 6
    failing, 194 ok and the 3 configured that never ran; searching narrows to one."""
    login(page, dashboard.url)
    cards = page.get_by_test_id("pipeline-card")
    expect(cards).to_have_count(203)
    order = cards.evaluate_all("cards => cards.map(c => c.dataset.pipeline)")
    assert order[:6] == ["pipeline 29", "pipeline 58", "pipeline 87", "pipeline 116", "pipeline 145", "pipeline 174"]
    assert order[6:9] == ["pipeline 1", "pipeline 2", "pipeline 3"]  # then ok, by name as people sort
    assert order[-3:] == ["hourly", "nikki", "sleepy"]  # never ran, by what they show (nikki: "Leden → Nikki")
    counts = page.get_by_test_id("summary-count")
    found = dict(zip(counts.evaluate_all("links => links.map(a => a.dataset.state)"),
                     counts.evaluate_all("links => links.map(a => Number(a.dataset.count))"), strict=True))
    assert found == {"failing": 6, "overdue": 0, "running": 0, "ok": 194, "never ran": 3}
    expect(page.locator('[data-testid=summary-count][data-state="failing"]')).to_have_text("6 failing")
    expect(card(page, "pipeline 29").get_by_test_id("why")).to_have_text("member KNVB29: no e-mail address")

    page.locator("#filter-name").fill("PIPELINE 17")
    page.locator("#filter-name").press("Enter")

    expect(cards).to_have_count(11)  # pipeline 17 and 170 to 179; 174 failing, so first
    assert cards.evaluate_all("cards => cards.map(c => c.dataset.pipeline)")[:3] == [
        "pipeline 174", "pipeline 17", "pipeline 170"]


def test_the_compact_list_shows_every_pipeline_in_a_phone_s_width_and_is_remembered(
        browser, dashboard: Dashboard, two_hundred: dict[str, list[str]]) -> None:
    """On a 390 px phone: the list view, one row per pipeline with its state, fits the width; it is still the
    view after a reload and a new visit of the overview, until the cards are chosen again."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        login(page, dashboard.url)
        page.get_by_test_id("view-list").click()
        rows = page.get_by_test_id("pipeline-row")
        expect(rows).to_have_count(203)
        expect(page.get_by_test_id("pipeline-card")).to_have_count(0)
        first = rows.first
        expect(first).to_have_attribute("data-state", "failing")
        expect(first.get_by_test_id("state-badge")).to_have_text("failing")
        expect(first.get_by_test_id("why")).to_be_visible()
        width = page.get_by_test_id("pipeline-list").evaluate("el => el.getBoundingClientRect().right")
        assert width <= 390, width
        tallest = max(rows.evaluate_all("rows => rows.slice(0, 20).map(r => r.getBoundingClientRect().height)"))
        assert tallest < 844 / 4, tallest  # compact: many rows to a screen

        page.goto(f"{dashboard.url}/")  # no parameter: the list again (remembered)
        expect(page.get_by_test_id("pipeline-row")).to_have_count(203)
        page.get_by_test_id("view-cards").click()
        expect(page.get_by_test_id("pipeline-card")).to_have_count(203)
        page.goto(f"{dashboard.url}/")
        expect(page.get_by_test_id("pipeline-card")).to_have_count(203)
    finally:
        context.close()


# -- a run started from the dashboard ---------------------------------------------------------------------------
def test_a_started_run_s_end_shows_within_seconds_not_at_the_next_minute(
        page: Page, dashboard: Dashboard, gate: Path) -> None:
    """Start sleepy; while it runs the overview refreshes itself every few seconds (a fake clock moves them):
    its end shows, without a reload, long before the 60 s refresh; "running for …" linked to the live run."""
    page.on("dialog", lambda dialog: dialog.accept())
    page.clock.install()
    login(page, dashboard.url)
    sleepy = card(page, "sleepy")
    sleepy.get_by_test_id("start-button").click()
    expect(sleepy).to_have_attribute("data-state", "running")
    run_id = int(re.search(r"run (\d+)", page.locator("#flash").inner_text()).group(1))
    expect(sleepy.get_by_test_id("running-link")).to_have_attribute("href", f"/run/{run_id}")
    expect(sleepy.get_by_test_id("running-link")).to_contain_text("running for")
    page.evaluate("window.__not_reloaded = true")

    gate.touch()
    wait_until(lambda: Db(dashboard.db_url).run(run_id)["outcome"] != "running", "the started run to end")
    page.clock.fast_forward(FAST_REFRESH_S * 1000)

    expect(sleepy).to_have_attribute("data-state", "ok")
    expect(sleepy.get_by_test_id("state-badge")).to_have_text("ok")
    expect(sleepy.get_by_test_id("start-button")).to_be_enabled()
    assert page.evaluate("window.__not_reloaded") is True
    assert not page.locator("#overview").get_attribute("data-fast-refresh")  # back to the minute
