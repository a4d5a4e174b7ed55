"""What the pages say in words: one noun per count and its plural (`present.plural`, the `plural` filter), sub-second
durations in ms, sentences that end before the next begins, a crash kind shown once, a clearing that does what its
confirmation promised, and a sentence instead of a zero (issue 21, defect 6). Over HTTP, on both backends."""

from __future__ import annotations

import re

import pytest
from webdata import add_run
from weblib import csrf_token

from runtracker.base.outcomes import FAILURE
from runtracker.core import lifecycle
from runtracker.core.ending import Ending
from runtracker.web import present


def text(html: str, element_id: str) -> str:
    """The text of the element with this id, its tags left out and its white space made single spaces."""
    match = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"no element #{element_id}"
    return " ".join(re.sub(r"<[^>]+>", "", match.group(2)).split())


@pytest.mark.parametrize(("count", "one", "many", "expected"), [
    (0, "error", None, "0 errors"), (1, "error", None, "1 error"), (2, "run", None, "2 runs"),
    (1204, "run", None, "1,204 runs"), (1, "kind of error", "kinds of error", "1 kind of error"),
    (3, "kind of error", "kinds of error", "3 kinds of error"), (1, "error matches", "errors match", "1 error matches"),
])
def test_plural_puts_the_word_in_the_number_s_form(count, one, many, expected):
    """One noun, singular for exactly one, plural otherwise (an irregular plural given), the number with commas."""
    assert present.plural(count, one, many) == expected


def test_sub_second_ranges_are_shown_in_ms():
    """A range below a second was "0s": it is in milliseconds."""
    assert present.short_duration(144) == "144 ms"
    assert present.short_duration(45_000) == "45s"


def test_one_successful_run_is_singular_and_its_144_ms_are_not_0s(app, client):
    """"the last 1 successful runs took 0s" for a run of 144 ms: now "the last successful run took 144 ms"."""
    store = app.state.web.store
    add_run(store, "nikki", 0, duration_s=0.144)
    add_run(store, "nikki", 10, outcome="running")
    html = client.get("/").text
    line = re.search(r'data-testid="running-link">([^<]*)<', html).group(1)
    assert "the last successful run took 144 ms" in line, line
    assert "1 successful runs" not in html and "took 0s" not in html


def test_the_error_count_and_newest_first_are_two_sentences(app, client):
    """"5 errors match.Newest first." had no space between the sentences; one error is singular."""
    store = app.state.web.store
    add_run(store, "nikki", 0, errors=[("sync", None, "boom")])
    assert text(client.get("/errors").text, "error-count") == "1 error matches. Newest first."
    add_run(store, "nikki", 1, errors=[("sync", None, "boom")] * 4)
    assert text(client.get("/errors").text, "error-count") == "5 errors match. Newest first."
    assert "match.Newest" not in client.get("/errors").text


def test_a_member_with_one_error_in_one_run_reads_in_the_singular(app, client):
    """"1 errors … in 1 runs": one error, one run."""
    add_run(app.state.web.store, "nikki", 0, errors=[("sync", "KNVB1", "not found")])
    facts = text(client.get("/member/KNVB1").text, "member-facts")
    assert facts.startswith("1 error across runs and pipelines; the latest: in 1 run of nikki (1)"), facts
    assert "1 errors" not in facts and "1 runs" not in facts


def test_a_member_with_errors_in_two_runs_reads_in_the_plural(app, client):
    store = app.state.web.store
    add_run(store, "nikki", 0, errors=[("sync", "KNVB1", "not found")])
    add_run(store, "nikki", 5, errors=[("sync", "KNVB1", "not found")])
    facts = text(client.get("/member/KNVB1").text, "member-facts")
    assert facts.startswith("2 errors across runs and pipelines; the latest 2: in 2 runs of nikki (2)"), facts


def test_a_group_of_one_run_and_one_member_is_singular(app, client):
    """The grouped view's run and member counts: "1 run", "1 member", "2 runs"."""
    store = app.state.web.store
    add_run(store, "nikki", 0, errors=[("sync", "KNVB1", "member 1 not found")])
    html = client.get("/errors?view=groups").text
    assert "<summary>1 run</summary>" in html and "<summary>1 member</summary>" in html
    assert text(html, "group-window").startswith("1 kind of error in the one error matching the filters")
    add_run(store, "nikki", 5, errors=[("sync", "KNVB2", "member 2 not found")])
    html = client.get("/errors?view=groups").text
    assert "<summary>2 runs</summary>" in html and "<summary>2 members</summary>" in html


def test_grouping_nothing_says_so_instead_of_counting_zeros(app, client):
    """"0 kinds of error in the latest 0 errors": a sentence saying there is nothing to group."""
    html = client.get("/errors?view=groups").text
    assert text(html, "group-window") == "No errors match the filters: there is nothing to group."
    assert "0 kinds" not in html and "latest 0" not in html


def test_a_crash_kind_is_shown_once_in_words_with_its_code_as_a_tooltip(app, client, db_url):
    """"kind: uncaught exception uncaught_exception": the label once, the code in the title."""
    store = app.state.web.store
    run_id = add_run(store, "nikki", 1, outcome="running")
    lifecycle.end_run(store, run_id, Ending(FAILURE, kind="uncaught_exception", message="ValueError: bad row"))
    html = client.get(f"/run/{run_id}").text
    kind = re.search(r'<dd data-testid="crash-kind"([^>]*)>([^<]*)</dd>', html)
    assert kind.group(2) == "uncaught exception" and 'title="uncaught_exception"' in kind.group(1)
    assert "uncaught_exception</code>" not in html


def test_the_clear_dialog_promises_what_it_then_deletes_and_says_first_that_crash_rows_stay(app, client):
    """9 errors match, one a crash row: the confirmation says 8 will be deleted and 1 crash row kept, and the
    result says 8 (it promised 9 and reported 8)."""
    store = app.state.web.store
    add_run(store, "nikki", 0, errors=[("sync", f"M{i}", "boom") for i in range(8)] + [("crash", None, "died")])
    page = client.get("/errors/clear").text
    assert text(page, "clear-summary") == ("This deletes 8 errors matching no filter: every error, and keeps the "
                                           "1 crash row among them.")
    response = client.post("/errors/clear", data={"csrf_token": csrf_token(client, "/"), "confirm": "yes"})
    flash = text(client.get(response.headers["location"]).text, "flash")
    assert flash == "Cleared 8 errors; crash rows are kept."
    assert text(client.get("/errors/clear").text, "clear-summary") == (
        "This deletes 0 errors matching no filter: every error, and keeps the 1 crash row among them.")


def test_the_clear_dialog_with_nothing_to_clear_says_so_and_offers_no_button(app, client):
    page = client.get("/errors/clear?pipeline=nikki").text
    assert text(page, "clear-summary") == "No errors match these filters: nothing to delete."
    assert 'id="clear-confirm"' not in page


def test_one_error_to_clear_is_singular(app, client):
    add_run(app.state.web.store, "nikki", 0, errors=[("sync", None, "boom")])
    page = client.get("/errors/clear").text
    assert text(page, "clear-summary") == "This deletes 1 error matching no filter: every error."
    assert "Delete this error" in page
    response = client.post("/errors/clear", data={"csrf_token": csrf_token(client, "/"), "confirm": "yes"})
    assert text(client.get(response.headers["location"]).text, "flash") == "Cleared 1 error; crash rows are kept."


def test_a_pipeline_with_one_run_says_1_run(app, client):
    """The history's count and the card's success rate: "1 run", "the last run"."""
    add_run(app.state.web.store, "nikki", 0)
    assert text(client.get("/pipeline/nikki").text, "history-facts").startswith("1 run ")
    assert "100% success of the last run<" in client.get("/").text
