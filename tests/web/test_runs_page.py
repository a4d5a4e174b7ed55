"""The runs page (/runs: every pipeline's runs in a time window, by outcome and pipeline, with counts) and a
pipeline's history filtered by outcome, with its chart's axes. Over HTTP, on both backends."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from webdata import BASE_MS, add_run, at

from runtracker.base.clock import iso, now_ms, to_ms
from runtracker.web import present, runlist


def rows(html: str) -> list[tuple[int, str, str]]:
    """(run id, pipeline, outcome) of each row of the runs table, in order."""
    return [(int(i), p, o) for i, o, p in re.findall(
        r'data-testid="run-row" data-run-id="(\d+)" data-outcome="([^"]+)" data-pipeline="([^"]*)"', html)]


def counts(html: str) -> dict[str, int]:
    return {o: int(n) for o, n in re.findall(r'data-outcome="([^"]+)" data-count="(\d+)"', html)}


def add_at(store, pipeline: str, started_ms: int, outcome: str = "success") -> int:
    """A run started at exactly `started_ms`."""
    return add_run(store, pipeline, (started_ms - BASE_MS) / 60_000, outcome=outcome, started_at=iso(started_ms))


# -- the window -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("now", "zone", "expected"), [
    ("2026-12-07T09:00:00Z", "UTC", "2026-12-06T18:00:00.000Z"),
    ("2026-12-07T00:30:00Z", "UTC", "2026-12-06T18:00:00.000Z"),
    ("2026-12-07T23:59:00Z", "UTC", "2026-12-06T18:00:00.000Z"),
    ("2026-12-07T09:00:00Z", "Europe/Amsterdam", "2026-12-06T17:00:00.000Z"),  # 18:00 CET
    ("2026-07-07T09:00:00Z", "Europe/Amsterdam", "2026-07-06T16:00:00.000Z"),  # 18:00 CEST
    ("2026-12-06T23:30:00Z", "Europe/Amsterdam", "2026-12-06T17:00:00.000Z"),  # already the 7th there
])
def test_last_night_is_18_00_yesterday_in_the_display_zone(now, zone, expected):
    assert iso(runlist.last_night(to_ms(now), zone)) == expected


def test_the_default_window_is_since_18_00_yesterday_and_the_page_says_so(app, client):
    """A run a minute before 18:00 yesterday is left out; one at 18:00 and one now are shown, newest first."""
    store = app.state.web.store
    evening = runlist.last_night(now_ms(), "UTC")
    add_at(store, "nikki", evening - 60_000)
    at_six = add_at(store, "laposta", evening, outcome="failure")
    latest = add_at(store, "nikki", now_ms() - 1000, outcome="partial")
    html = client.get("/runs").text
    assert rows(html) == [(latest, "nikki", "partial"), (at_six, "laposta", "failure")]
    said = " ".join(re.sub(r"<[^>]+>", "", re.search(r'id="runs-window"[^>]*>(.*?)</p>', html, re.S).group(1)).split())
    day = datetime.fromtimestamp(evening / 1000, UTC).strftime("%a %Y-%m-%d")
    assert said == f"Every run started from {day} 18:00 UTC until now (the default: since 18:00 yesterday, UTC), " \
                   "newest first."


def test_from_and_to_choose_the_window_and_a_date_as_to_includes_that_day(app, client):
    store = app.state.web.store
    first = add_run(store, "nikki", 0)  # 2026-05-28T20:26:40Z
    second = add_run(store, "nikki", 60 * 24)  # the 29th
    add_run(store, "nikki", 60 * 48)  # the 30th
    assert [r[0] for r in rows(client.get("/runs?from=2026-05-28T20:00&to=2026-05-29").text)] == [second, first]
    assert [r[0] for r in rows(client.get("/runs?from=2026-05-28T20:27&to=2026-05-29T20:26").text)] == []
    assert [r[0] for r in rows(client.get("/runs?from=2026-05-28&to=2026-05-28").text)] == [first]


@pytest.mark.parametrize(("query", "message"), [
    ("outcome=crashed", "`outcome` is one of failure, lost, partial, running, success"),
    ("from=yesterday", "`from` must be a date (2026-12-06) or a date and time (2026-12-06T18:00), in UTC"),
    ("from=2026-05-29&to=2026-05-28T12:00", "`to` (Thu 2026-05-28 12:00 UTC) must be after `from` "
                                            "(Fri 2026-05-29 00:00 UTC)"),
    ("before=999", "there is no run 999"),
])
def test_a_bad_parameter_is_a_400_that_says_what_is_wrong(client, query, message):
    response = client.get(f"/runs?{query}")
    assert response.status_code == 400 and message in response.text


def test_the_runs_page_needs_a_login(anon):
    response = anon.get("/runs?outcome=failure")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Fruns%3Foutcome%3Dfailure"


# -- outcomes and counts -------------------------------------------------------------------------------------
@pytest.fixture
def night(app):
    """Runs of three pipelines on 2026-05-28/29: successes, failures (one lost: reaped), a partial, a running."""
    store = app.state.web.store
    ids = {
        "s1": add_run(store, "nikki", 0), "f1": add_run(store, "laposta", 10, outcome="failure"),
        "p1": add_run(store, "nikki", 20, outcome="partial"),
        "lost": add_run(store, "backup", 30, outcome="failure", reaped_at=at(40), ended_by="reaper"),
        "s2": add_run(store, "laposta", 50), "r1": add_run(store, "backup", 60, outcome="running"),
    }
    add_run(store, "nikki", 60 * 24 * 3, outcome="failure")  # outside the window
    return ids


WINDOW = "from=2026-05-28T18:00&to=2026-05-29T12:00"


@pytest.mark.parametrize(("outcome", "expected"), [
    ("", ["r1", "s2", "lost", "p1", "f1", "s1"]), ("failure", ["lost", "f1"]), ("lost", ["lost"]),
    ("success", ["s2", "s1"]), ("partial", ["p1"]), ("running", ["r1"]),
])
def test_the_outcome_filter_shows_the_runs_of_that_outcome(client, night, outcome, expected):
    html = client.get(f"/runs?{WINDOW}&outcome={outcome}").text
    assert [r[0] for r in rows(html)] == [night[k] for k in expected]
    if outcome:
        assert f'<option value="{outcome}" selected>' in html


def test_counts_by_outcome_count_the_window_whatever_the_outcome_filter(client, night):
    """The counts are the window's (a lost run counts as a failure and as lost), each a link to its filter."""
    for query in (WINDOW, f"{WINDOW}&outcome=success"):
        html = client.get(f"/runs?{query}").text
        assert counts(html) == {"failure": 2, "lost": 1, "partial": 1, "running": 1, "success": 2}
    assert 'href="/runs?from=2026-05-28T18%3A00&amp;to=2026-05-29T12%3A00&amp;outcome=lost"' in html


def test_the_pipeline_filter_narrows_rows_and_counts(client, night):
    html = client.get(f"/runs?{WINDOW}&pipeline=backup").text
    assert [r[0] for r in rows(html)] == [night["r1"], night["lost"]]
    assert counts(html) == {"failure": 1, "lost": 1, "partial": 0, "running": 1, "success": 0}
    assert 'data-lost="true"' in html and ">lost</span>" in html


def test_counts_stop_at_the_cap(client, app, monkeypatch):
    monkeypatch.setattr(runlist, "COUNT_CAP", 3)
    for minute in range(5):
        add_run(app.state.web.store, "nikki", minute)
    html = client.get(f"/runs?{WINDOW}").text
    assert 'data-outcome="success" data-count="4"' in html and "more than 3" in html


def test_no_runs_in_the_window_says_so(client, night):
    html = client.get("/runs?from=2027-01-01&outcome=partial&pipeline=nikki").text
    assert rows(html) == [] and "No partial runs of nikki started in this window." in html


# -- pages ---------------------------------------------------------------------------------------------------
def test_pages_by_key_go_through_every_run_once_keeping_the_filters(app, client):
    """120 failures and some successes in the window: 50, 50, 20 failures, newest first, none twice, none left
    out; every page's links keep the window and the filter."""
    store = app.state.web.store
    failures = [add_run(store, "nikki" if i % 2 else "laposta", i, outcome="failure") for i in range(120)]
    for i in range(10):
        add_run(store, "nikki", i + 0.5)
    seen, link = [], f"/runs?{WINDOW}&outcome=failure"
    while link:
        html = client.get(link).text
        assert {o for _, _, o in rows(html)} <= {"failure"}
        seen.append([r[0] for r in rows(html)])
        found = re.search(r'href="([^"]+)" rel="next"', html)
        link = found.group(1).replace("&amp;", "&") if found else None
        if link:
            assert "outcome=failure" in link and "from=2026-05-28T18%3A00" in link
    assert [len(page) for page in seen] == [50, 50, 20]
    assert sum(seen, []) == list(reversed(failures))


def test_the_nav_links_to_the_runs_page_and_the_api_docs(client):
    nav = re.search(r"<nav>(.*?)</nav>", client.get("/").text, re.S).group(1)
    assert re.search(r'<a href="/runs"\s*>Runs</a>', nav) and re.search(r'<a href="/docs/api"\s*>API</a>', nav)
    assert re.search(r'<a href="/runs"\s*aria-current="page">Runs</a>', client.get("/runs").text)


def test_hostile_pipeline_names_are_text_on_the_runs_page(app, client):
    add_run(app.state.web.store, '<script>alert("x")</script>', 0)
    html = client.get(f"/runs?{WINDOW}").text
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


# -- a pipeline's history: the outcome filter and the chart's axes ---------------------------------------------
def history_rows(html: str) -> list[tuple[int, str]]:
    return [(int(i), o) for i, o in re.findall(r'data-testid="history-row" data-run-id="(\d+)" data-outcome="([^"]+)"',
                                               html)]


def test_the_history_filters_by_outcome_with_its_count_chart_and_pages(app, client):
    """?outcome=failure: only failures in the table and the chart, "N runs" counts them, pages keep it."""
    store = app.state.web.store
    failures = [add_run(store, "nikki", i * 2, outcome="failure", duration_s=30) for i in range(25)]
    for i in range(25):
        add_run(store, "nikki", i * 2 + 1, duration_s=60)
    html = client.get("/pipeline/nikki?outcome=failure").text
    assert history_rows(html) == [(i, "failure") for i in reversed(failures[-20:])]
    assert re.search(r'id="history-facts">\s*25 failure runs', html)
    assert html.count('<rect class="bar failure') == 25 and '<rect class="bar success' not in html
    older = re.search(r'href="([^"]+)" rel="next"', html).group(1).replace("&amp;", "&")
    assert older == f"/pipeline/nikki?outcome=failure&before={failures[5]}"
    second = client.get(older).text
    assert history_rows(second) == [(i, "failure") for i in reversed(failures[:5])]
    newer = re.search(r'href="([^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
    assert newer.startswith("/pipeline/nikki?outcome=failure&after=")
    assert history_rows(client.get(newer).text) == history_rows(html)
    assert [o for _, o in history_rows(client.get("/pipeline/nikki").text)] == ["success", "failure"] * 10


def test_the_history_of_lost_runs_and_an_empty_outcome(app, client):
    store = app.state.web.store
    lost = add_run(store, "nikki", 0, outcome="failure", reaped_at=at(1), ended_by="reaper")
    add_run(store, "nikki", 2, outcome="failure")
    assert history_rows(client.get("/pipeline/nikki?outcome=lost").text) == [(lost, "failure")]
    html = client.get("/pipeline/nikki?outcome=partial").text
    assert history_rows(html) == [] and "No partial runs." in html
    assert client.get("/pipeline/nikki?outcome=bogus").status_code == 400


@pytest.mark.parametrize(("seconds", "ticks"), [
    ([0.144, 0.09, 0.12], ["0", "50 ms", "100 ms", "150 ms"]),
    ([480, 660, 500], ["0", "5 min", "10 min", "15 min"]),
    ([4.2, 1, 3], ["0", "2 s", "4 s", "6 s"]),
    ([3 * 3600, 3600], ["0", "1 h", "2 h", "3 h"]),
])
def test_the_duration_chart_has_a_scale_in_human_units_and_the_first_and_last_start(app, client, seconds, ticks):
    """y: 3 to 5 labelled ticks from 0 to a round top at or above the longest run; x: the first and last run's
    start; the SVG is an image with a label and a title that say the same."""
    store = app.state.web.store
    for i, s in enumerate(seconds):
        add_run(store, "nikki", i * 90, duration_s=s)
    html = client.get("/pipeline/nikki").text
    labels = re.findall(r'data-testid="y-tick" data-ms="(\d+)">([^<]+)<', html)
    assert [label for _, label in labels] == ticks and 3 <= len(labels) <= 5
    assert int(labels[-1][0]) >= max(seconds) * 1000 > int(labels[-2][0])
    first = re.search(r'data-testid="x-first" data-at="([^"]+)">([^<]+)<', html)
    last = re.search(r'data-testid="x-last" data-at="([^"]+)">([^<]+)<', html)
    assert first.groups() == (at(0), present.axis_time(to_ms(at(0)), "UTC"))
    assert last.group(1) == at((len(seconds) - 1) * 90)
    svg = re.search(r'<svg viewBox="0 0 880 200"[^>]*>', html).group(0)
    assert 'role="img"' in svg
    label = re.search(r'aria-label="([^"]+)"', svg).group(1)
    assert f"<title>{label}</title>" in html
    # A few bars leave no room for the last label under its bar: it follows the first one, as "to ...".
    assert last.group(2) == "to " + present.axis_time(to_ms(last.group(1)), "UTC")
    assert label.startswith(f"Duration of the last {len(seconds)} runs up to this page, from {first.group(2)} "
                            f"{last.group(2)}, on a scale of 0 to {ticks[-1]}")


def test_a_run_far_longer_than_usual_reaches_the_top_and_the_caption_says_so(app, client):
    """The scale stops at 4x the usual duration (one stuck run does not flatten the rest): the caption says a
    longer run reaches the top."""
    store = app.state.web.store
    for i in range(6):
        add_run(store, "nikki", i * 10, duration_s=60)
    add_run(store, "nikki", 100, duration_s=3600)
    html = client.get("/pipeline/nikki").text
    assert re.findall(r'data-testid="y-tick" data-ms="\d+">([^<]+)<', html) == ["0", "1 min", "2 min", "3 min", "4 min"]
    assert "a run longer than 4 min (4× the usual) reaches the top" in html
