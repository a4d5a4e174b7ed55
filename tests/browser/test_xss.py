"""Hostile text stored through the public API — a pipeline name, error messages, a stack, a member id and a
crash — never runs in the browser, on any page, after a self-refresh either, on both backends.

Twice each: as served (its Content-Security-Policy forbids inline script, which alone would stop these
payloads), and with the CSP bypassed, so that the escaping is tested by itself. On every page: the payloads'
markers (`window.__xss`, a dialog) stay unset, none of their elements is in the page, and their text is shown
as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browserdata import crashed_run, tracked_run
from browserlib import Dashboard, login
from playwright.sync_api import Dialog, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=1</script>"
SVG = '"><svg onload=window.__xss=1>'
ALERT = "<img src=y onerror=alert(document.domain)>"
JS_URL = "javascript:window.__xss=1"
LINK = f'<a href="{JS_URL}" id="xss-link">click</a>'

PIPELINE = f"evil{SVG}{SCRIPT}"
MEMBER = f"{JS_URL}//{SVG}"
MESSAGE = f"bad {IMG} {SCRIPT} {ALERT} {LINK}"
CRASH = f"died {SCRIPT} {IMG}"
# Elements that only a payload could have put in the page (the dashboard's own script is /static/app.js).
INJECTED = ("img[src=x], img[src=y], svg[onload], script:not([src='/static/app.js']), #xss-link, "
            "[onerror], [onload], a[href^='javascript:' i]")


@pytest.fixture
def dashboard_db_url(db_url: str) -> str:
    """Both backends."""
    return db_url


@pytest.fixture(params=[{}, {"bypass_csp": True}], ids=["csp", "csp-bypassed"])
def context_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    return request.param


@pytest.fixture
def hostile(dashboard: Dashboard, tmp_path: Path) -> dict[str, int]:
    """A partial run of the hostile pipeline with hostile errors, and a crashed run of it dying of hostile text."""
    run_id = tracked_run(dashboard.db_url, PIPELINE, step=f"step{SCRIPT}", errors=[
        (f"step{SCRIPT}", MEMBER, MESSAGE), (f"step{SCRIPT}", MEMBER, MESSAGE.replace("bad", "worse"))])
    crashed = crashed_run(tmp_path / "app", dashboard.db_url, PIPELINE, step=f"load{IMG}", message=CRASH,
                          member=MEMBER)
    return {"run": run_id, "crashed": crashed}


@pytest.fixture
def dialogs(page: Page) -> Iterator[list[str]]:
    """Every dialog the page opens (none should), dismissed."""
    opened: list[str] = []

    def record(dialog: Dialog) -> None:
        opened.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", record)
    yield opened
    assert opened == []


def assert_inert(page: Page, dialogs: list[str], *texts: str) -> None:
    """Nothing of the payloads runs or exists as markup on this page, and `texts` are shown as text."""
    page.wait_for_load_state("networkidle")  # an <img src=x> that slipped through has failed to load by then
    where = page.url
    assert page.evaluate("typeof window.__xss") == "undefined", where
    assert dialogs == [], where
    assert page.locator(INJECTED).count() == 0, (where, page.locator(INJECTED).evaluate_all(
        "found => found.map(e => e.outerHTML)"))
    shown = page.locator("#content").inner_text()
    for text in texts:
        assert text in shown, (where, text)


def refresh(page: Page) -> None:
    """The page's own minute refresh (fake clock), which parses the fetched page and swaps its content in."""
    page.evaluate("document.body.removeAttribute('data-refreshed')")
    page.clock.fast_forward(60_000)
    expect(page.locator("body")).to_have_attribute("data-refreshed", re.compile(r"^\d+$"))


def test_hostile_text_never_runs_on_any_page(page: Page, dashboard: Dashboard, hostile: dict[str, int],
                                            dialogs: list[str]) -> None:
    """Overview, history, the run, the crashed run, the run's errors, the error browser (flat, filtered,
    grouped) and the member page: each shows the hostile text as text, before and after its self-refresh, and
    none of it runs; the links made from a `javascript:` member id and the hostile name lead to their pages."""
    page.clock.install()
    login(page, dashboard.url)

    # The overview, then the history through the card's link (a path made from the name).
    assert page.url == f"{dashboard.url}/"
    expect(page.get_by_test_id("pipeline-card")).to_have_count(1)
    assert page.get_by_test_id("pipeline-card").get_attribute("data-pipeline") == PIPELINE
    assert_inert(page, dialogs, PIPELINE)
    refresh(page)
    assert_inert(page, dialogs, PIPELINE)

    page.get_by_test_id("pipeline-link").click()
    expect(page.get_by_test_id("pipeline-name")).to_have_text(PIPELINE)
    expect(page.get_by_test_id("history-row")).to_have_count(2)
    visits = [(page.url, (PIPELINE,))]

    # The run with the hostile errors, the crashed run, and the run's errors page.
    visits += [(f"{dashboard.url}/run/{hostile['run']}", (PIPELINE, MEMBER, MESSAGE, f"step{SCRIPT}")),
               (f"{dashboard.url}/run/{hostile['crashed']}", (PIPELINE, CRASH, f"load{IMG}")),
               (f"{dashboard.url}/errors/{hostile['run']}", (PIPELINE, MEMBER, MESSAGE))]
    # The error browser: every error, filtered by the hostile pipeline and member (query strings made by the
    # browser from the form), and grouped.
    visits += [(f"{dashboard.url}/errors", (PIPELINE, MEMBER, MESSAGE, CRASH)),
               (f"{dashboard.url}/errors?view=groups", (PIPELINE, MESSAGE))]
    for url, texts in visits:
        page.goto(url)
        assert_inert(page, dialogs, *texts)
        refresh(page)
        assert_inert(page, dialogs, *texts)
    expect(page.get_by_test_id("error-group")).to_have_count(3)  # the two messages and the crash

    page.goto(f"{dashboard.url}/errors")
    page.locator("#filter-pipeline").select_option(PIPELINE)
    page.locator("#filter-member").fill(MEMBER)
    page.locator("#filter-text").fill(SCRIPT)
    page.locator("#filter-apply").click()
    expect(page.get_by_test_id("error-row")).to_have_count(2)
    expect(page.locator("#filter-member")).to_have_value(MEMBER)
    assert_inert(page, dialogs, MESSAGE)

    # The member page, through the error row's link: `/member/javascript%3A...`, a path, not a script.
    page.get_by_test_id("error-row").first.get_by_test_id("member-link").click()
    expect(page.get_by_test_id("member-id")).to_have_text(MEMBER)
    assert page.url.startswith(f"{dashboard.url}/member/javascript%3A")
    assert_inert(page, dialogs, MEMBER, MESSAGE)
    refresh(page)
    assert_inert(page, dialogs, MEMBER, MESSAGE)
