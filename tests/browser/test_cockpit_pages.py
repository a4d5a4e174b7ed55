"""The runs page (last night across all pipelines), a pipeline's history filtered by outcome with its chart's axes,
and the API docs page, in a real Chromium against a real `runtracker serve --demo` (issue 21)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from browserdata import add_run
from browserlib import Dashboard, login
from playwright.sync_api import Page, expect

from helpers import BACKENDS
from runtracker.base.clock import iso, now_ms
from runtracker.storage import open_store
from runtracker.web import apidocs, runlist

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

HOUR = 3_600_000


@pytest.fixture
def night(dashboard: Dashboard) -> Iterator[dict[str, int]]:
    """Runs since last night (18:00 yesterday, UTC) of three pipelines, and one from before it."""
    store = open_store(dashboard.db_url)
    evening = runlist.last_night(now_ms(), "UTC")
    try:
        yield {
            "before": add_run(store, "nikki", evening - HOUR, outcome="failure"),
            "s1": add_run(store, "nikki", evening + 1000, duration_s=120),
            "f1": add_run(store, "laposta", evening + 2000, outcome="failure", duration_s=30),
            "p1": add_run(store, "backup", evening + 3000, outcome="partial"),
            "f2": add_run(store, "nikki", evening + 4000, outcome="failure", duration_s=90,
                          reaped_at="2026-01-01T00:00:00.000Z", ended_by="reaper"),
            "s2": add_run(store, "laposta", evening + 5000, duration_s=45),
        }
    finally:
        store.close()


def shown_runs(page: Page) -> list[int]:
    return [int(i) for i in page.get_by_test_id("run-row").evaluate_all("rows => rows.map(r => r.dataset.runId)")]


@pytest.mark.parametrize("dashboard_db_url", BACKENDS, indirect=True)
def test_the_runs_page_shows_last_night_and_filters_by_outcome(page: Page, dashboard: Dashboard,
                                                              night: dict[str, int]) -> None:
    """From the nav: every run since 18:00 yesterday, newest first, with counts by outcome; choosing `failure`
    shows the two failures (one lost) and keeps the choice; a count's link filters as well."""
    login(page, dashboard.url)
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.locator("h1")).to_have_text("Runs since last night")
    expect(page.locator("#runs-window")).to_contain_text("(the default: since 18:00 yesterday, UTC)")
    assert shown_runs(page) == [night[k] for k in ("s2", "f2", "p1", "f1", "s1")]
    expect(page.locator('[data-testid=outcome-count][data-outcome="failure"]')).to_have_text("failure 2")
    expect(page.locator('[data-testid=outcome-count][data-outcome="lost"]')).to_have_text("lost 1")
    expect(page.locator('[data-testid=outcome-count][data-outcome="success"]')).to_have_text("success 2")

    page.locator("#filter-outcome").select_option("failure")
    page.locator("#filter-apply").click()
    expect(page).to_have_url(re.compile(r"/runs\?outcome=failure"))
    assert shown_runs(page) == [night["f2"], night["f1"]]
    expect(page.locator("#filter-outcome")).to_have_value("failure")
    expect(page.locator(f'[data-run-id="{night["f2"]}"] .tag')).to_have_text("lost")
    expect(page.locator('[data-testid=outcome-count][aria-current="page"]')).to_have_attribute("data-outcome",
                                                                                               "failure")
    page.locator('[data-testid=outcome-count][data-outcome="success"]').click()
    expect(page).to_have_url(re.compile(r"outcome=success"))
    assert shown_runs(page) == [night["s2"], night["s1"]]
    page.get_by_role("link", name="laposta").first.click()
    expect(page.get_by_test_id("pipeline-name")).to_have_text("laposta")


def test_the_runs_page_window_can_be_chosen(page: Page, dashboard: Dashboard, night: dict[str, int]) -> None:
    """A `from` before yesterday's evening brings the earlier run in; the page says the window."""
    evening = runlist.last_night(now_ms(), "UTC")
    login(page, f"{dashboard.url}/runs")
    from_value = iso(evening - 2 * HOUR)[:16]  # 2026-12-06T16:00, as a datetime-local field holds it
    page.locator("#filter-from").fill(from_value)
    page.locator("#filter-apply").click()
    expect(page.locator("#runs-window")).to_contain_text(from_value.replace("T", " ")[5:] + " UTC")
    assert shown_runs(page)[-1] == night["before"] and len(shown_runs(page)) == 6


def test_the_history_filters_by_outcome_and_its_chart_has_axes(page: Page, dashboard: Dashboard,
                                                               night: dict[str, int]) -> None:
    """nikki's history: choose `failure`, only failures in the table and the chart; the chart, an image with a
    name, has 3 to 5 duration ticks from 0 upwards and the first and last run's start, inside the drawing."""
    login(page, f"{dashboard.url}/pipeline/nikki")
    page.locator("#filter-outcome").select_option("failure")
    page.locator("#filter-apply").click()
    expect(page).to_have_url(re.compile(r"/pipeline/nikki\?outcome=failure"))
    rows = page.get_by_test_id("history-row")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.outcome)") == ["failure", "failure"]
    chart = page.get_by_role("img", name=re.compile(r"^Duration of the last 2 failure runs up to this page"))
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar")).to_have_count(2)
    expect(chart.locator("rect.bar.success")).to_have_count(0)
    ticks = chart.get_by_test_id("y-tick")
    labels = ticks.evaluate_all("ticks => ticks.map(t => t.textContent)")
    assert 3 <= len(labels) <= 5 and labels[0] == "0" and all(re.fullmatch(r"[\d.]+ (ms|s|min|h|d)", t)
                                                              for t in labels[1:]), labels
    box = chart.bounding_box()
    tops = []
    for tick in ticks.all():
        b = tick.bounding_box()
        assert box["x"] <= b["x"] and b["x"] + b["width"] <= box["x"] + box["width"] + 1
        tops.append(b["y"])
    assert tops == sorted(tops, reverse=True)  # 0 at the bottom, the largest at the top
    first, last = chart.get_by_test_id("x-first"), chart.get_by_test_id("x-last")
    expect(first).to_contain_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$"))
    a, b = first.bounding_box(), last.bounding_box()
    assert a["x"] + a["width"] < b["x"] and b["x"] + b["width"] <= box["x"] + box["width"] + 1
    assert a["y"] + a["height"] <= box["y"] + box["height"] + 1
    assert chart.locator("title").first.text_content() == chart.get_attribute("aria-label")


def test_the_api_docs_page_renders_every_operation_from_the_nav(page: Page, dashboard: Dashboard) -> None:
    """The nav's API link: the ingest API's operations, each with its method, path and responses; a link of the
    index scrolls to its operation; no request leaves the site."""
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    login(page, dashboard.url)
    page.get_by_role("link", name="API", exact=True).click()
    expect(page.locator("#api-title")).to_contain_text("runtracker ingest API")
    operations = page.get_by_test_id("api-operation")
    assert operations.count() >= 10
    paths = operations.evaluate_all("ops => ops.map(o => o.dataset.method + ' ' + o.dataset.path)")
    assert "POST /api/runs" in paths and "PATCH /api/runs/{run_id}/steps/{step_id}" in paths
    target = page.locator('[data-path="/api/ping/{pipeline}/{exit_code}"]')
    expect(target).not_to_be_in_viewport()
    page.locator("#api-index a", has_text="/api/ping/{pipeline}/{exit_code}").click()
    expect(target).to_be_in_viewport()
    spec = json.loads(apidocs.OPENAPI.read_text(encoding="utf-8"))
    responses = spec["paths"]["/api/ping/{pipeline}/{exit_code}"]["post"]["responses"]
    expect(target.get_by_test_id("api-response")).to_have_count(len(responses))
    assert all(url.startswith(dashboard.url) for url in requests), requests
