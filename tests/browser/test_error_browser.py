"""The error browser in a real browser: each filter, the grouped view, a member's page from an error row, and the
self-refresh keeping filters, scroll position and open stacks (with Playwright's fake clock: no minute waited).

The history, recorded by RunTracker: two runs of nikki (members KNVB1-3 not found, one download timeout) and
one of laposta (KNVB1 and KNVB4) — eight errors, five of them alike.
"""

from __future__ import annotations

import re

import pytest
from browserdata import tracked_run
from browserlib import Dashboard, login
from playwright.sync_api import Page, Request, expect

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

NOT_FOUND = "member {} not found"


@pytest.fixture
def history(dashboard: Dashboard) -> Dashboard:
    db = dashboard.db_url
    tracked_run(db, "nikki", step="nikki-sync", errors=[
        ("nikki-sync", "KNVB1", NOT_FOUND.format("KNVB1")), ("nikki-sync", "KNVB2", NOT_FOUND.format("KNVB2")),
        ("nikki-sync", "KNVB3", NOT_FOUND.format("KNVB3")), ("nikki-download", None, "download timed out after 30 s")])
    tracked_run(db, "nikki", step="nikki-sync", errors=[
        ("nikki-sync", "KNVB1", NOT_FOUND.format("KNVB1")), ("nikki-sync", "KNVB2", NOT_FOUND.format("KNVB2"))])
    tracked_run(db, "laposta", step="laposta-sync", errors=[
        ("laposta-sync", "KNVB1", "HTTP 503 from the Laposta API"),
        ("laposta-sync", "KNVB4", "invalid e-mail address 'knvb4@'")])
    return dashboard


def messages(page: Page) -> list[str]:
    return [m.strip() for m in page.get_by_test_id("error-row").locator("td.message").all_inner_texts()]


@pytest.mark.parametrize(("field", "value", "param", "expected"), [
    ("#filter-member", "KNVB1", "member=KNVB1",
     ["HTTP 503 from the Laposta API", "member KNVB1 not found", "member KNVB1 not found"]),
    ("#filter-pipeline", "laposta", "pipeline=laposta",
     ["invalid e-mail address 'knvb4@'", "HTTP 503 from the Laposta API"]),
    ("#filter-text", "NOT FOUND", "q=NOT+FOUND",
     ["member KNVB2 not found", "member KNVB1 not found", "member KNVB3 not found", "member KNVB2 not found",
      "member KNVB1 not found"]),
], ids=["member", "pipeline", "text"])
def test_a_filter_shows_only_the_matching_errors_and_keeps_its_value(
        page: Page, history: Dashboard, field: str, value: str, param: str, expected: list[str]) -> None:
    """Fill in (or choose) one filter and apply it: only the matching errors, newest first; the URL and the
    field keep the filter."""
    login(page, f"{history.url}/errors")
    expect(page.get_by_test_id("error-row")).to_have_count(8)
    if field == "#filter-pipeline":
        page.locator(field).select_option(value)
    else:
        page.locator(field).fill(value)
    page.locator("#filter-apply").click()

    expect(page.get_by_test_id("error-row")).to_have_count(len(expected))
    assert messages(page) == expected
    assert param in page.url
    expect(page.locator(field)).to_have_value(value)


def test_the_grouped_view_shows_identical_errors_as_one_row_with_their_count(page: Page, history: Dashboard) -> None:
    """"member KNVB… not found" five times, for three members in two runs, is one group of 5; the others are
    groups of one."""
    login(page, f"{history.url}/errors")
    page.locator("#view-groups").click()

    assert "view=groups" in page.url
    groups = page.get_by_test_id("error-group")
    expect(groups).to_have_count(4)
    assert groups.evaluate_all("rows => rows.map(r => r.dataset.count)") == ["5", "1", "1", "1"]
    alike = groups.first
    expect(alike.locator("code.pattern")).to_have_text("member KNVB# not found")
    expect(alike).to_have_attribute("data-step", "nikki-sync")
    expect(alike.locator("td.num")).to_have_text("5")
    expect(alike.get_by_text("2 runs")).to_be_visible()
    members = alike.get_by_test_id("group-members")
    members.locator("summary").click()
    expect(members.get_by_role("link")).to_have_text(["KNVB2", "KNVB1", "KNVB3"])


def test_the_grouped_view_keeps_the_filters(page: Page, history: Dashboard) -> None:
    """Filter by pipeline, then switch to the grouped view: the groups of that pipeline's errors only."""
    login(page, f"{history.url}/errors")
    page.locator("#filter-pipeline").select_option("nikki")
    page.locator("#filter-apply").click()
    expect(page.get_by_test_id("error-row")).to_have_count(6)
    page.locator("#view-groups").click()

    assert "pipeline=nikki" in page.url and "view=groups" in page.url
    expect(page.locator("#filter-pipeline")).to_have_value("nikki")
    groups = page.get_by_test_id("error-group")
    expect(groups).to_have_count(2)
    assert groups.evaluate_all("rows => rows.map(r => r.dataset.count)") == ["5", "1"]


def test_a_member_link_in_an_error_row_opens_the_members_page(page: Page, history: Dashboard) -> None:
    """KNVB1 in laposta's error row: the member page, with KNVB1's errors of every pipeline and what keeps
    failing for them."""
    login(page, f"{history.url}/errors")
    row = page.get_by_test_id("error-row").filter(has_text="HTTP 503")
    row.get_by_test_id("member-link").click()

    assert page.url == f"{history.url}/member/KNVB1"
    expect(page.get_by_test_id("member-id")).to_have_text("KNVB1")
    rows = page.get_by_test_id("member-errors").get_by_test_id("error-row")
    expect(rows).to_have_count(3)
    expect(page.locator("#member-facts")).to_contain_text("3 errors")
    expect(page.locator("#member-facts")).to_contain_text("nikki (2), laposta (1)")
    expect(page.locator("#member-facts").get_by_role("link")).to_have_text(["nikki", "laposta"])
    expect(page.get_by_test_id("error-group")).to_have_count(2)


# -- the self-refresh -------------------------------------------------------------------------------------------
def refreshes(page: Page) -> list[str]:
    """The URLs of the page's self-refresh requests (the script marks them), as they are sent."""
    sent: list[str] = []

    def seen(request: Request) -> None:
        if request.headers.get("x-requested-with") == "refresh":
            sent.append(request.url)

    page.on("request", seen)
    return sent


def test_a_refresh_keeps_the_filters_the_scroll_position_and_open_stacks(page: Page, history: Dashboard) -> None:
    """A minute later (a fake clock) the filtered page fetches itself: a new error appears, the filters, the
    scroll position and an opened stack stay as they were."""
    tracked_run(history.db_url, "nikki", step="nikki-sync",
                errors=[("nikki-sync", f"KNVB{n}", NOT_FOUND.format(f"KNVB{n}")) for n in range(100, 160)])
    page.clock.install()
    login(page, f"{history.url}/errors?pipeline=nikki&q=not+found")
    sent = refreshes(page)
    rows = page.get_by_test_id("error-row")
    expect(rows).to_have_count(50)
    stack = rows.nth(20).locator("details")
    stack_id = stack.get_attribute("id")
    stack.locator("summary").click()
    expect(stack).to_have_attribute("open", "")
    page.evaluate("window.scrollTo(0, 600)")
    assert page.evaluate("window.scrollY") == 600
    url = page.url
    tracked_run(history.db_url, "nikki", step="nikki-sync", errors=[("nikki-sync", "KNVB999",
                                                                     NOT_FOUND.format("KNVB999"))])

    page.clock.fast_forward(60_000)

    expect(page.locator("body")).to_have_attribute("data-refreshed", re.compile(r"^\d+$"))
    assert sent == [url]
    expect(rows.first.locator("td.message summary")).to_have_text(NOT_FOUND.format("KNVB999"))
    assert page.url == url
    expect(page.locator("#filter-pipeline")).to_have_value("nikki")
    expect(page.locator("#filter-text")).to_have_value("not found")
    assert page.evaluate("window.scrollY") == 600
    expect(page.locator(f"details#{stack_id}")).to_have_attribute("open", "")


def test_a_refresh_waits_while_a_filter_is_being_edited(page: Page, history: Dashboard) -> None:
    """A filter typed in but not applied: the minute's refresh is skipped (the text stays); once the field is
    back as it was, the next one happens."""
    page.clock.install()
    login(page, f"{history.url}/errors")
    sent = refreshes(page)
    page.locator("#filter-text").fill("KNVB")

    page.clock.fast_forward(60_000)

    expect(page.locator("#filter-text")).to_have_value("KNVB")
    assert page.locator("body").get_attribute("data-refreshed") is None

    page.locator("#filter-text").fill("")
    page.locator("#filter-text").blur()
    page.clock.fast_forward(60_000)

    expect(page.locator("body")).to_have_attribute("data-refreshed", re.compile(r"^\d+$"))
    assert len(sent) == 1, sent  # the second minute's refresh only: the first was skipped, not merely late
