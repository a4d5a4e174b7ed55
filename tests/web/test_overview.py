"""The overview as the morning view, over HTTP on both backends: one state per pipeline (failing, overdue, too
long, late heartbeat, running, ok, never ran) as a badge, the summary line's counts, most urgent first, the
state filter, the name search (case and accents ignored), the natural name order, the compact list view
(remembered), display names and descriptions, and why the last run failed; the same state in /api/pipelines and
/metrics."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from webdata import add_run
from weblib import api_key

from runtracker.base.clock import iso, now_ms
from runtracker.core import liveness
from runtracker.web import present

HOUR_MS = 3600_000
CONFIG = """
[pipelines.broken]
display_name = "Leden → Nikki"
description = "Members from Sportlink to Nikki, every hour."
schedule = "0 * * * *"
grace = "1m"

[pipelines.late]
schedule = "0 * * * *"
grace = "1m"

[pipelines.stuck]
max_runtime = "1h"

[pipelines.fresh]
display_name = "Zürich export"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """broken (failing, and overdue too), late (overdue), stuck (too long), fresh (never ran) are configured."""
    path = tmp_path / "runtracker.toml"
    path.write_text(CONFIG)
    return path


def ago(ms: int) -> str:
    return iso(now_ms() - ms)


def finished(store, pipeline: str, started_ms_ago: int, outcome: str = "success", **columns) -> int:
    return add_run(store, pipeline, 0, outcome=outcome, started_at=ago(started_ms_ago),
                   finished_at=ago(started_ms_ago - 60_000), **columns)


def running(store, pipeline: str, started_ms_ago: int, **columns) -> int:
    """A running run owned by this (live) process, unless `columns` say otherwise."""
    owner = {"hostname": liveness.hostname(), "pid": os.getpid(), "heartbeat_at": iso(now_ms()), **columns}
    return add_run(store, pipeline, 0, outcome="running", started_at=ago(started_ms_ago), **owner)


@pytest.fixture
def history(app, monkeypatch) -> dict[str, int]:
    """Every state once (and `broken` both failing and overdue): the run ids by pipeline."""
    # The heartbeat timeout is an hour here, so a heartbeat 45 minutes old is late (half of it) and no reaper
    # would end its run yet: the test does not race a clock.
    monkeypatch.setenv("RUNTRACKER_HEARTBEAT_TIMEOUT_S", "3600")
    store = app.state.web.store
    ids = {
        "broken": finished(store, "broken", 3 * HOUR_MS, "failure",
                           errors=[("sync", "KNVB1", "member KNVB1: no e-mail address\nTraceback: ..."),
                                   ("sync", "KNVB2", "the second error")]),
        "late": finished(store, "late", 3 * HOUR_MS),
        "stuck": running(store, "stuck", 2 * HOUR_MS),
        "silent": running(store, "silent", HOUR_MS, hostname="another-host.example", pid=4242,
                          heartbeat_at=ago(45 * 60_000)),
        "busy": running(store, "busy", 60_000),
        "fine": finished(store, "fine", HOUR_MS),
        "patchy": finished(store, "patchy", HOUR_MS, "partial", errors=[("sync", "KNVB3", "no birth date")]),
        "exited": finished(store, "exited", HOUR_MS, "failure", exit_code=3),
        "killed": finished(store, "killed", HOUR_MS, "failure",
                           summary_json=json.dumps({"crash": True, "kind": "signal", "signal": "SIGKILL"})),
    }
    finished(store, "busy", 2 * HOUR_MS, "failure")  # failed before; running again now
    return ids


STATES = {"broken": "failing", "exited": "failing", "killed": "failing", "late": "overdue", "stuck": "too long",
          "silent": "late heartbeat", "busy": "running", "fine": "ok", "patchy": "ok", "fresh": "never ran"}


def cards(html: str) -> list[tuple[str, str]]:
    """(pipeline, state) of each card, in the page's order."""
    return re.findall(r'<article [^>]*data-pipeline="([^"]+)"[^>]*data-state="([^"]+)"', html)


def card(html: str, pipeline: str) -> str:
    match = re.search(rf'<article [^>]*data-pipeline="{re.escape(pipeline)}"[^>]*>(.*?)</article>', html, re.S)
    assert match, f"no card for {pipeline}"
    return match.group(0)


def summary(html: str) -> dict[str, int]:
    return {state: int(n) for state, n in
            re.findall(r'data-testid="summary-count" data-state="([^"]+)" data-count="(\d+)"', html)}


def test_each_pipeline_has_one_state_as_its_badge(client, history):
    """Failing, overdue, too long, late heartbeat, running, ok, never ran: each card's state and badge."""
    html = client.get("/").text
    assert dict(cards(html)) == STATES
    for name, state in STATES.items():
        assert f'data-testid="state-badge" data-state="{state}">{state}</span>' in card(html, name)


def test_a_failing_pipeline_that_is_overdue_too_is_failing_and_still_says_since_when(client, history):
    """broken's last run failed and its hourly run is missed: failing wins, the overdue line is on the card."""
    broken = card(client.get("/").text, "broken")
    assert 'data-state="failing"' in broken and re.search(r'data-testid="overdue" title="[^"]*">Overdue since', broken)


def test_the_summary_counts_each_state_and_each_count_filters(client, history):
    """3 failing, 1 of every other state; each count links to the overview filtered by its state."""
    html = client.get("/").text
    assert summary(html) == {"failing": 3, "overdue": 1, "too long": 1, "late heartbeat": 1, "running": 1, "ok": 2,
                             "never ran": 1}
    assert re.search(r'<a href="/\?state=failing"[^>]*data-state="failing" data-count="3">3 failing</a>', html)
    filtered = client.get("/?state=failing").text
    assert sorted(name for name, _ in cards(filtered)) == ["broken", "exited", "killed"]
    assert summary(filtered)["ok"] == 2  # the summary counts every pipeline, whatever the filter
    assert [name for name, _ in cards(client.get("/?state=late+heartbeat").text)] == ["silent"]


def test_the_default_order_is_most_urgent_first_then_by_name(client, history):
    """failing, overdue, too long, late heartbeat, running, ok, never ran; by name within a state (display name
    where there is one: "Leden → Nikki" after "killed")."""
    assert [name for name, _ in cards(client.get("/").text)] == [
        "exited", "killed", "broken", "late", "stuck", "silent", "busy", "fine", "patchy", "fresh"]


def test_order_by_name_sorts_as_people_do(app, client):
    """Case, accents and numbers as people read them, not byte order: "Zürich" among the z's, "alpha2" before
    "alpha10", "Beta" among the b's; a display name sorts by what it says (broken is "Leden → Nikki", fresh
    "Zürich export")."""
    store = app.state.web.store
    for name in ("zeta", "Zürich", "alpha10", "alpha2", "Beta", "ledenadmin", "zurich-b"):
        finished(store, name, HOUR_MS)
    assert [name for name, _ in cards(client.get("/?order=name").text)] == [
        "alpha2", "alpha10", "Beta", "late", "broken", "ledenadmin", "stuck", "zeta", "Zürich", "fresh", "zurich-b"]


@pytest.mark.parametrize(("search", "found"), [
    ("zur", ["fresh", "zurich-1"]),  # the display name "Zürich export", and a name; accents ignored
    ("ZÜRICH", ["fresh", "zurich-1"]),  # case ignored
    ("leden", ["broken"]),  # the display name
    ("brok", ["broken"]),  # the name behind the display name
    ("nothing like it", []),
])
def test_the_name_search_matches_display_names_and_names_ignoring_case_and_accents(app, client, history, search,
                                                                                     found):
    """`q` keeps the pipelines whose display name or name contains it, case and accents ignored."""
    finished(app.state.web.store, "zurich-1", HOUR_MS)
    html = client.get("/", params={"q": search}).text
    assert sorted(name for name, _ in cards(html)) == found
    assert ('data-testid="no-match"' in html) == (not found)


def test_a_state_that_does_not_exist_is_a_bad_request(client):
    """`state` is one of the states; anything else is 400, saying which."""
    response = client.get("/?state=burning")
    assert response.status_code == 400 and "failing" in response.text


def test_the_list_view_is_one_row_per_pipeline_and_is_remembered(client, history):
    """?view=list: a row each, with its state, name and why; the next visit without the parameter keeps it,
    until ?view=cards."""
    html = client.get("/?view=list").text
    rows = re.findall(r'<tr [^>]*data-testid="pipeline-row" data-pipeline="([^"]+)" data-state="([^"]+)"', html)
    assert dict(rows) == STATES and "pipeline-card" not in html
    assert rows[0][0] == "exited"  # most urgent first here too
    assert 'data-testid="pipeline-row"' in client.get("/").text  # remembered (a cookie)
    assert 'data-testid="pipeline-card"' in client.get("/?view=cards").text
    assert 'data-testid="pipeline-card"' in client.get("/").text


def test_display_names_and_descriptions_are_shown_with_the_name_beside(client, history):
    """The display name is the link's text and the name stays visible; the description is a line of the card."""
    broken = card(client.get("/").text, "broken")
    assert re.search(r'data-testid="pipeline-link">Leden → Nikki</a> <span class="tech-name" '
                     r'data-testid="pipeline-name">broken</span>', broken)
    assert 'data-testid="description">Members from Sportlink to Nikki, every hour.</p>' in broken
    page = client.get("/pipeline/broken").text
    assert "Leden → Nikki" in page and 'data-testid="pipeline-name">broken<' in page
    assert "Members from Sportlink to Nikki, every hour." in page
    assert 'data-testid="pipeline-link">late</a>' in card(client.get("/").text, "late")  # no display name


def test_a_failed_card_says_why_in_one_line(client, history):
    """The first error's first line, an exit status, a signal; a partial run's first error too; none when ok."""
    html = client.get("/").text

    def why(name: str) -> str | None:
        found = re.search(r'data-testid="why" title="[^"]*">([^<]*)<', card(html, name))
        return found.group(1) if found else None

    assert why("broken") == "member KNVB1: no e-mail address"
    assert why("exited") == "exit status 3"
    assert why("killed") == "killed by a signal (SIGKILL)"
    assert why("patchy") == "no birth date"
    assert why("fine") is None and why("fresh") is None


def test_running_for_links_to_the_live_run_and_asks_for_a_quick_refresh(client, history):
    """"running for …" is a link to the run's page; while a pipeline runs, the page asks app.js to refresh
    every few seconds, and not once nothing runs."""
    html = client.get("/").text
    assert re.search(rf'<a href="/run/{history["busy"]}" data-testid="running-link">running for ', card(html, "busy"))
    assert re.search(r'<div id="overview" [^>]*data-fast-refresh="\d+"', html)


def test_nothing_running_no_quick_refresh(app, client):
    """No pipeline running: the usual 60 s refresh only."""
    finished(app.state.web.store, "fine", HOUR_MS)
    assert "data-fast-refresh" not in client.get("/").text


def test_the_api_and_metrics_give_the_same_state(app, anon, client, history):
    """/api/pipelines gives each pipeline's state, display name and why; /metrics a gauge per state."""
    key = {"authorization": f"Bearer {api_key(app)}"}
    found = {p["name"]: p for p in anon.get("/api/pipelines", headers=key).json()["pipelines"]}
    assert {name: p["state"] for name, p in found.items()} == STATES
    assert found["broken"]["display_name"] == "Leden → Nikki" and found["exited"]["why"] == "exit status 3"
    assert found["silent"]["runs_heartbeat_late"] == [history["silent"]]
    text = client.get("/metrics").text
    assert 'runtracker_pipeline_state{pipeline="silent",state="late heartbeat"} 1.0' in text
    assert 'runtracker_pipeline_state{pipeline="silent",state="running"} 0.0' in text
    assert 'runtracker_pipelines{state="failing"} 3.0' in text


def _reads(app, monkeypatch) -> list[str]:
    """Every statement the app's store reads from now on."""
    store, seen = app.state.web.store, []
    read = store.read

    def spy(sql, params=()):
        seen.append(sql)
        return read(sql, params)

    monkeypatch.setattr(store, "read", spy)
    return seen


def _pipelines(store, first: int, count: int) -> None:
    """`count` pipelines, each with a failed run and a running one (the overview's most reads per pipeline)."""
    for i in range(first, first + count):
        finished(store, f"p{i}", 2 * HOUR_MS, "failure", errors=[("sync", None, f"error {i}")])
        running(store, f"p{i}", 60_000)


def test_the_overview_reads_in_bulk_and_not_at_all_while_nothing_changed(app, client, monkeypatch):
    """5 pipelines or 45, failing and running: the same number of statements (no read per pipeline); asked
    again with nothing written in between, none of them (SQLite: its change token is this database's)."""
    store = app.state.web.store
    _pipelines(store, 0, 5)
    seen = _reads(app, monkeypatch)
    assert client.get("/").status_code == 200
    few = len(seen)
    _pipelines(store, 5, 40)
    seen.clear()
    html = client.get("/").text
    assert len(cards(html)) == 45 + 4 and summary(html)["running"] == 45
    assert len(seen) == few, seen
    if store.dialect == "postgresql":
        return  # its change token is the server's (any database's commit moves it): other tests write meanwhile
    seen.clear()
    client.get("/")
    assert not [sql for sql in seen if " runs" in sql or "run_errors" in sql], seen


# -- the text rules, without a server ---------------------------------------------------------------------------
def test_names_fold_case_accents_and_compatibility_forms():
    """casefold + NFKD without combining marks: ü is u, ß is ss, the ﬁ ligature is fi, é in either form is e."""
    assert present.folded("Zürich") == present.folded("zurich") == "zurich"
    assert present.folded("Straße") == "strasse" and present.folded("ﬁnance") == "finance"
    assert present.folded("Caf\u00e9") == present.folded("Cafe\u0301") == "cafe"


def test_natural_order_reads_numbers_as_numbers_and_breaks_ties_by_the_text():
    """sync 2 < sync 10; a leading number too; names equal once folded keep one order (the text as given)."""
    names = ["sync 10", "Sync 2", "sync 1b", "10 nightly", "9 nightly", "zurich", "Zürich", "Émile", "emile 2"]
    assert sorted(names, key=present.name_key) == [
        "9 nightly", "10 nightly", "Émile", "emile 2", "sync 1b", "Sync 2", "sync 10", "Zürich", "zurich"]


@pytest.mark.parametrize(("run", "detail", "why"), [
    ({"outcome": "success"}, {"first_error": "x"}, None),
    ({"outcome": "failure"}, {"first_error": None}, None),
    ({"outcome": "failure"}, {"first_error": "\n  first line  \nsecond"}, "first line"),
    ({"outcome": "failure"}, {"first_error": "x" * 200}, "x" * 139 + "…"),
    ({"outcome": "failure"}, {"exit_code": 3, "first_error": "boom"}, "exit status 3: boom"),
    ({"outcome": "failure"}, {"exit_code": 3, "first_error": "exit status 3: boom"}, "exit status 3: boom"),
    ({"outcome": "failure", "reaped_at": "2026-07-02T12:00:00.000Z"}, {}, "lost process"),
    ({"outcome": "failure", "reaped_at": "2026-07-02T12:00:00.000Z"},
     {"first_error": "process lost: pid 7 on vm no longer exists"}, "lost process: pid 7 on vm no longer exists"),
    ({"outcome": "failure"}, {"summary_json": '{"timeout": true, "exit_code": 124}'}, "timeout, exit status 124"),
    ({"outcome": "failure"}, {"summary_json": '{"kind": "uncaught_exception", "error": "ValueError: no"}',
                              "first_error": "an earlier error"}, "uncaught exception: ValueError: no"),
    ({"outcome": "failure"}, {"summary_json": '{"kind": "not_found", "exit_code": 127}'}, "command not found"),
])
def test_why_a_run_failed_in_one_line(run, detail, why):
    """How it crashed (kind, signal, exit status), then the crash's message or its first error: one line, cut."""
    assert present.why_failed(run, detail) == why
