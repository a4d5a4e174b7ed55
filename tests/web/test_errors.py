"""The error browser: every filter, pages by key, windows, the grouped view, one member's page, clearing."""

from __future__ import annotations

import re

import pytest
from webdata import add_run
from weblib import csrf_token

from runtracker.storage.errorfilter import ErrorFilter
from runtracker.storage.search import ErrorSearch


@pytest.fixture
def history(app):
    """Three pipelines' runs with errors: nikki (two runs), laposta, backup; members shared across them."""
    store = app.state.web.store
    nikki1 = add_run(store, "nikki", 0, errors=[("nikki-sync", "KNVB1", "member KNVB1 not found"),
                                                ("nikki-sync", "KNVB2", "member KNVB2 not found"),
                                                ("nikki-download", None, "timeout after 30 s")])
    laposta = add_run(store, "laposta", 60 * 24, errors=[("laposta-sync", "KNVB1", "HTTP 503 from api"),
                                                         ("laposta-sync", None, "100% done_ish")])
    nikki2 = add_run(store, "nikki", 60 * 48, errors=[("nikki-sync", "KNVB3", "member KNVB3 not found"),
                                                      ("crash", None, "ValueError: boom")])
    backup = add_run(store, "backup", 60 * 49)
    return {"nikki1": nikki1, "laposta": laposta, "nikki2": nikki2, "backup": backup}


def messages(html: str) -> list[str]:
    return [m.strip() for m in re.findall(r'<td class="message"[^>]*>\s*(.*?)\s*</td>', html, re.S)]


@pytest.mark.parametrize(("query", "expected"), [
    ("", ["ValueError: boom", "member KNVB3 not found", "100% done_ish", "HTTP 503 from api", "timeout after 30 s",
          "member KNVB2 not found", "member KNVB1 not found"]),
    ("pipeline=nikki", ["ValueError: boom", "member KNVB3 not found", "timeout after 30 s",
                        "member KNVB2 not found", "member KNVB1 not found"]),
    ("pipeline=backup", []),
    ("step=nikki-sync", ["member KNVB3 not found", "member KNVB2 not found", "member KNVB1 not found"]),
    ("member=KNVB1", ["HTTP 503 from api", "member KNVB1 not found"]),
    ("member=KNVB1&pipeline=laposta", ["HTTP 503 from api"]),
    ("q=NOT FOUND", ["member KNVB3 not found", "member KNVB2 not found", "member KNVB1 not found"]),
    ("q=%25", ["100% done_ish"]),  # a LIKE wildcard is taken literally
    ("q=_ish", ["100% done_ish"]),
    ("q=' OR 1=1 --", []),
    ("pipeline=nikki&q=knvb3", ["member KNVB3 not found"]),
    ("pipeline=nikki&step=nikki-download", ["timeout after 30 s"]),
    ("since=2026-05-29&until=2026-05-29", ["100% done_ish", "HTTP 503 from api"]),
    ("since=2026-05-30T20:00", ["ValueError: boom", "member KNVB3 not found"]),
    ("until=2026-05-28", ["timeout after 30 s", "member KNVB2 not found", "member KNVB1 not found"]),
    ("pipeline=nikki&until=2026-05-28", ["timeout after 30 s", "member KNVB2 not found", "member KNVB1 not found"]),
    ("step=nikki-sync&member=KNVB2", ["member KNVB2 not found"]),
])
def test_every_filter_of_the_error_browser(client, history, query, expected):
    """Each filter alone and combined, newest first (a pipeline's run by run: its newest run first); free text
    is a case-insensitive substring, its LIKE characters literal, every value bound."""
    html = client.get(f"/errors?{query}").text
    assert messages(html) == expected


def test_the_error_browser_pages_by_key_without_repeating_or_skipping(app, client):
    """120 errors over 3 runs: pages of 50, 50 and 20 through `older`, every error once; deep pages link back."""
    store = app.state.web.store
    for run in range(3):
        add_run(store, "nikki", run * 10, errors=[("sync", None, f"e{run}-{i}") for i in range(40)])
    for query in ("", "pipeline=nikki"):
        seen, sizes, path = [], [], f"/errors?{query}"
        while path:
            html = client.get(path).text
            found = messages(html)
            sizes.append(len(found))
            seen += found
            older = re.search(r'href="([^"]+)" rel="next"', html)
            path = older.group(1).replace("&amp;", "&") if older else None
        assert sizes == [50, 50, 20] and sorted(seen) == sorted(f"e{r}-{i}" for r in range(3) for i in range(40))


def test_counts_are_capped(app, client, monkeypatch):
    """The count stops at the cap: "more than 1,000" (here a cap of 5)."""
    monkeypatch.setattr("runtracker.web.views.COUNT_CAP", 5)
    add_run(app.state.web.store, "nikki", 1, errors=[("sync", None, f"e{i}") for i in range(7)])
    assert "more than 5 errors match" in client.get("/errors").text
    assert not re.search(r"\d errors match\b", client.get("/errors?q=e1").text)  # free text: not counted


@pytest.mark.parametrize("query", ["q=needle", "pipeline=nikki&q=needle", "member=M1&pipeline=laposta"])
def test_a_filter_no_index_serves_is_searched_a_window_at_a_time(app, client, monkeypatch, query):
    """With a window of 3 errors (runs, for a pipeline), a match further back is not read on the first page:
    the page says how far it searched, and "search older" goes on from there until it is found."""
    monkeypatch.setattr(ErrorSearch, "ERROR_WINDOW", 3)
    monkeypatch.setattr(ErrorSearch, "RUN_WINDOW", 3)
    store = app.state.web.store
    add_run(store, "laposta" if "laposta" in query else "nikki", 0,
            errors=[("sync", "M1", "the needle")])
    for minute in range(1, 9):
        add_run(store, "nikki", minute, errors=[("sync", "M1", "hay")])
    path, pages = f"/errors?{query}", 0
    while True:
        html = client.get(path).text
        pages += 1
        if "the needle" in messages(html):
            break
        assert 'data-testid="window-end"' in html and "search older" in html
        path = re.search(r'href="([^"]+)" rel="next"', html).group(1).replace("&amp;", "&")
    assert pages > 1


def test_errors_of_one_run(client, history):
    """/errors/<run_id> lists that run's errors in the order they were recorded."""
    html = client.get(f"/errors/{history['nikki1']}").text
    assert messages(html) == ["member KNVB1 not found", "member KNVB2 not found", "timeout after 30 s"]


def test_the_grouped_view_collapses_alike_errors_into_one_row(app, client):
    """Messages that differ only in numbers, ids and quoted values are one group: its count, runs and members."""
    store = app.state.web.store
    for night in range(3):
        add_run(store, "nikki", night * 1440, errors=[("nikki-sync", f"KNVB{m}", f"member KNVB{m} not found "
                                                       f"(request {night * 100 + m})") for m in range(14)]
                + [("nikki-sync", None, "invalid IBAN 'NL12BANK0034'")])
    html = client.get("/errors?view=groups").text
    groups = re.findall(r'data-testid="error-group" data-count="(\d+)" data-step="([^"]+)"', html)
    assert groups == [("42", "nikki-sync"), ("3", "nikki-sync")]
    assert "member KNVB# not found (request #)" in html and "invalid IBAN &#39;…&#39;" in html
    assert "14 members" in html and "3 runs" in html
    assert 'data-window="2000" data-rows="45"' in html


def test_the_grouped_view_keeps_the_filters(client, history):
    """Grouping the errors of one member: only theirs."""
    html = client.get("/errors?view=groups&member=KNVB1").text
    assert re.findall(r'data-testid="error-group" data-count="(\d+)"', html) == ["1", "1"]


def test_the_member_page_shows_every_error_of_the_member_across_pipelines(client, history):
    """/member/<id>: its errors in every pipeline, newest first, and what keeps failing."""
    html = client.get("/member/KNVB1").text
    assert messages(html.split('data-testid="member-errors"')[1]) == ["HTTP 503 from api", "member KNVB1 not found"]
    assert "laposta" in html and "nikki" in html and 'data-testid="error-groups"' in html


def test_a_member_id_with_slashes_and_spaces_has_its_page(app, client):
    """Member ids are any text: the URL escapes them, the page finds them."""
    add_run(app.state.web.store, "nikki", 1, errors=[("sync", "a/b c?d#e", "odd id")])
    html = client.get("/errors").text
    link = re.search(r'href="(/member/[^"]+)" data-testid="member-link"', html).group(1)
    assert link == "/member/a%2Fb%20c%3Fd%23e"
    assert "odd id" in client.get(link).text


def test_clear_errors_asks_first_then_deletes_the_matching_ones_but_keeps_crash_rows(app, client, history):
    """GET /errors/clear is the confirmation (nothing deleted); the POST deletes what the filters match, in
    batches; crash rows stay."""
    dash = app.state.web.dash
    page = client.get("/errors/clear?pipeline=nikki").text
    said = " ".join(page.split())
    assert "This deletes 4 errors matching these filters, and keeps the 1 crash row among them." in said
    assert 'name="pipeline" value="nikki"' in page
    assert len(dash.run_errors(history["nikki1"], 100)) == 3
    response = client.post("/errors/clear", data={"csrf_token": csrf_token(client, "/"), "pipeline": "nikki",
                                                  "confirm": "yes"})
    assert response.status_code == 303
    assert dash.run_errors(history["nikki1"], 100) == []
    assert [e["step_name"] for e in dash.run_errors(history["nikki2"], 100)] == ["crash"]
    assert len(dash.run_errors(history["laposta"], 100)) == 2
    assert "Cleared 4 errors" in client.get(response.headers["location"]).text


def test_clear_errors_without_confirm_only_shows_the_confirmation(client, history, app):
    """A POST without confirm=yes deletes nothing and goes back to the confirmation."""
    response = client.post("/errors/clear", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 303 and response.headers["location"].startswith("/errors/clear")
    assert len(app.state.web.dash.run_errors(history["nikki1"], 100)) == 3


@pytest.mark.parametrize("flt", [ErrorFilter(), ErrorFilter(pipeline="nikki"), ErrorFilter(text="e1"),
                                 ErrorFilter(step="sync", member="M1")])
def test_clearing_in_batches_deletes_everything_that_matches(app, monkeypatch, flt):
    """More rows (and runs) than one batch: every matching row goes, the others and crash rows stay."""
    monkeypatch.setattr("runtracker.storage.runs.CLEAR_BATCH", 7)
    monkeypatch.setattr("runtracker.storage.runs.CLEAR_RUNS", 2)
    store, dash = app.state.web.store, app.state.web.dash
    runs = [add_run(store, pipeline, minute, errors=[("sync", f"M{i % 2}", f"e{i}") for i in range(12)]
                    + [("crash", None, "boom")]) for minute, pipeline in enumerate(["nikki"] * 5 + ["laposta"])]
    everything = [e for run in runs for e in dash.run_errors(run, 100)]

    def matches(e):
        return e["step_name"] != "crash" and all((
            flt.pipeline is None or e["run_id"] in runs[:5], flt.text is None or flt.text in e["error_message"],
            flt.member is None or e["member_identifier"] == flt.member))

    expected_left = [e["id"] for e in everything if not matches(e)]
    assert app.state.web.runs.clear_errors(flt) == len(everything) - len(expected_left)
    assert [e["id"] for run in runs for e in dash.run_errors(run, 100)] == expected_left
