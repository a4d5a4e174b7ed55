"""The overview, a pipeline's history, a run's page and its crash panel, over HTTP on both backends."""

from __future__ import annotations

import re

import pytest
from webdata import add_run, at, tracked_run

from runtracker.base.outcomes import FAILURE
from runtracker.core import lifecycle
from runtracker.core.ending import Ending


def card(html: str, pipeline: str) -> str:
    match = re.search(rf'<article [^>]*data-pipeline="{re.escape(pipeline)}"[^>]*>(.*?)</article>', html, re.S)
    assert match, f"no card for {pipeline}"
    return match.group(0)


def test_overview_has_a_card_per_pipeline_from_runs_and_config(app, client):
    """Pipelines that ran and pipelines the config names (never ran) each get a card."""
    store = app.state.web.store
    add_run(store, "laposta", 1, outcome="partial", errors=[("sync", "KNVB1", "boom")])
    html = client.get("/").text
    assert 'data-status="partial"' in card(html, "laposta")
    assert 'data-status="never ran"' in card(html, "quiet") and "never ran" in card(html, "quiet")
    assert card(html, "nikki") and card(html, "sleeper")


def test_a_card_shows_the_last_run_its_counts_sparkline_and_success_rate(app, client):
    """Counts of the last run, one sparkline bar per recent run, and the success rate of the finished ones."""
    store = app.state.web.store
    for minute in range(4):
        add_run(store, "nikki", minute * 10, outcome="failure" if minute == 1 else "success")
    html = card(client.get("/").text, "nikki")
    assert 'data-status="success"' in html
    assert html.count('<rect class="bar') == 4
    assert 'data-rate="75"' in html and "of the last 4 runs" in html
    assert '<span class="c">3</span>' in html  # created, from the last run


def test_a_running_pipeline_disables_its_start_button_and_says_how_long_it_usually_takes(app, client):
    """Running: the card says for how long and how long the last successful runs took; Start is disabled."""
    store = app.state.web.store
    for minute, seconds in ((0, 480), (20, 660)):
        add_run(store, "nikki", minute, duration_s=seconds)
    add_run(store, "nikki", 60, outcome="running", started_by="api:cron")
    html = card(client.get("/").text, "nikki")
    assert 'data-status="running"' in html
    assert "running for" in html and "the last 2 successful runs took 8m–11m" in html
    assert re.search(r'data-testid="start-button"[^>]*disabled', html)
    assert not re.search(r'data-testid="start-button"[^>]*disabled', card(client.get("/").text, "sleeper"))


def test_a_run_of_another_writer_disables_start_too(app, client, db_url):
    """A Python pipeline's own running run (not one the dashboard started) disables Start as well."""
    from runtracker import RunTracker

    tracker = RunTracker("nikki", db=db_url)
    tracker.start_run()
    try:
        assert re.search(r'data-testid="start-button"[^>]*disabled', card(client.get("/").text, "nikki"))
    finally:
        tracker.end_run("success")
        tracker.close()


def test_only_pipelines_with_a_command_have_a_start_button(app, client):
    """`quiet` is configured without a command, laposta not at all: no Start button on either."""
    add_run(app.state.web.store, "laposta", 1)
    html = client.get("/").text
    assert "start-button" not in card(html, "quiet") and "start-button" not in card(html, "laposta")
    assert "start-button" in card(html, "nikki")


def test_history_pages_by_key_twenty_runs_a_page_newest_first(app, client):
    """45 runs: pages of 20, 20 and 5 through `older`, and `newer` back; no run twice, none left out."""
    store = app.state.web.store
    ids = [add_run(store, "nikki", minute) for minute in range(45)]
    add_run(store, "other", 100)
    seen: list[int] = []
    path = "/pipeline/nikki"
    pages = []
    while path:
        html = client.get(path).text
        rows = [int(x) for x in re.findall(r'data-testid="history-row" data-run-id="(\d+)"', html)]
        pages.append(len(rows))
        seen += rows
        older = re.search(r'href="([^"]+)" rel="next"', html)
        path = older.group(1).replace("&amp;", "&") if older else None
    assert pages == [20, 20, 5] and seen == list(reversed(ids))
    newer = re.search(r'href="([^"]+)" rel="prev"', client.get(f"/pipeline/nikki?before={ids[5]}").text)
    back = client.get(newer.group(1).replace("&amp;", "&")).text
    assert [int(x) for x in re.findall(r'data-testid="history-row" data-run-id="(\d+)"', back)] == ids[24:4:-1]


def test_runs_with_equal_start_times_page_by_id(app, client):
    """Runs started in the same millisecond are ordered by id: the key is (started_at, id)."""
    store = app.state.web.store
    ids = [add_run(store, "nikki", 5) for _ in range(25)]
    first = client.get("/pipeline/nikki").text
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(older).text
    shown = re.findall(r'data-testid="history-row" data-run-id="(\d+)"', first + second)
    assert [int(x) for x in shown] == list(reversed(ids))


def test_a_run_over_three_times_the_usual_duration_is_flagged_slow(app, client):
    """The median of the last successful runs is the usual duration; a run over 3x it is flagged."""
    store = app.state.web.store
    for minute in range(6):
        add_run(store, "nikki", minute * 10, duration_s=60)
    slow = add_run(store, "nikki", 100, duration_s=200)
    fine = add_run(store, "nikki", 110, duration_s=170)
    html = client.get("/pipeline/nikki").text
    assert re.search(rf'data-run-id="{slow}" data-outcome="success" data-slow="true"', html)
    assert re.search(rf'data-run-id="{fine}" data-outcome="success">', html)
    assert 'data-testid="duration-chart"' in html and html.count('<rect class="bar') == 8


@pytest.mark.parametrize(("path", "status"), [
    ("/pipeline/no-such-pipeline", 404), ("/run/999999", 404), ("/errors/999999", 404), ("/member/nobody", 404),
    ("/no/such/page", 404), ("/pipeline/nikki?before=999999", 404), ("/pipeline/nikki?before=abc", 400),
    ("/errors?since=yesterday", 400), ("/errors?after=garbage", 400), ("/errors?view=groups&window=7", 400),
    ("/errors?view=groups&window=20000", 200),
    ("/errors?q=" + "x" * 300, 400),
])
def test_unknown_things_are_404_and_bad_parameters_400(client, path, status):
    """Unknown pipelines, runs, members and pages are 404; parameters that cannot be used are 400 (a window
    the grouped view does not offer too)."""
    assert client.get(path).status_code == status


def test_a_pipeline_in_the_config_without_runs_has_an_empty_history(client):
    """A configured pipeline that never ran has a history page (no runs), not a 404."""
    response = client.get("/pipeline/quiet")
    assert response.status_code == 200 and "No runs." in response.text


def test_run_page_shows_summary_steps_timeline_and_errors(app, client, db_url):
    """A tracked run: its steps as a timeline and a table, its errors with members linked."""
    run_id = tracked_run(db_url, "nikki", errors=[{"member_identifier": "KNVB7", "error_message": "no such member",
                                                   "error_stack": "Traceback: here"}])
    html = client.get(f"/run/{run_id}").text
    assert 'data-testid="step-timeline"' in html and html.count('data-testid="step-row"') == 1
    assert 'href="/member/KNVB7"' in html and "no such member" in html and "Traceback: here" in html
    assert 'id="crash-panel"' not in html


def _crash(app, db_url, ending):
    tracker_run = add_run(app.state.web.store, "nikki", 1, outcome="running", hostname="h1", pid=4242)
    with app.state.web.store.transaction() as cur:
        cur.execute(app.state.web.store.sql("INSERT INTO run_steps (run_id, step_name, started_at) VALUES (?, ?, ?)"),
                    (tracker_run, "nikki-sync", at(1)))
    lifecycle.end_run(app.state.web.store, tracker_run, ending)
    return tracker_run


@pytest.mark.parametrize(("ending", "kind", "shown"), [
    (Ending(FAILURE, kind="uncaught_exception", message="ValueError: bad row", stack="Traceback: v",
                      name_step=True), "uncaught_exception", ["uncaught exception", "ValueError: bad row",
                                                              "Traceback: v", "nikki-sync"]),
    (Ending(FAILURE, kind="signal", message="killed by SIGTERM", summary={"signal": "SIGTERM"}),
     "signal", ["SIGTERM", "killed by a signal"]),
    (Ending(FAILURE, kind="exit", message="exited with code 3", exit_code=3), "exit",
     ["exit without end_run", 'data-testid="crash-exit-code">3<']),
    (Ending(FAILURE, kind="lost", message="process lost: pid 4242 is gone",
                      stack="Fatal Python error: Segmentation fault", name_step=True,
                      reaped=(at(5), "pid_gone"), summary={"detected_by": "runtracker monitor"}),
     "lost", ["lost process", "runtracker monitor", "pid_gone", "Segmentation fault"]),
    (Ending(FAILURE, kind="exit", message="timed out after 2h: sent SIGTERM",
                      summary={"command": "node sync.js", "timeout": True, "exit_code": 124}, exit_code=124,
                      output_tail="last line of output\n"), "timeout",
     ["timeout", 'data-testid="exec-command">node sync.js<', "last line of output"]),
])
def test_a_crashed_run_shows_the_crash_panel_first(app, client, db_url, ending, kind, shown):
    """The crash panel comes before the summary, with the kind, signal or exit code, the traceback, the step in
    progress and who detected it; an exec run shows its command and output tail."""
    run_id = _crash(app, db_url, ending)
    html = client.get(f"/run/{run_id}").text
    assert html.index('id="crash-panel"') < html.index('id="run-summary"')
    assert f'data-kind="{kind}"' in html
    for text in shown:
        assert text in html


def test_a_run_with_many_errors_links_to_all_of_them(app, client):
    """The run page shows the first 100 errors; /errors/<run_id> pages through all of them in order."""
    run_id = add_run(app.state.web.store, "nikki", 1, errors=[("sync", f"M{i}", f"error {i}") for i in range(130)])
    html = client.get(f"/run/{run_id}").text
    assert html.count('data-testid="error-row"') == 100 and f'href="/errors/{run_id}"' in html
    first = client.get(f"/errors/{run_id}").text
    nxt = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(nxt).text
    messages = re.findall(r"error (\d+)", first + second)
    assert [int(m) for m in messages if m] == list(range(100))  # 50 + 50 in order


def test_pages_refresh_themselves_and_the_favicon_shows_a_running_run(app, client):
    """Every page asks for a refresh every 60 s (script, or <noscript> meta); while a run is running the favicon
    is the running one and the header says how many."""
    html = client.get("/").text
    assert 'data-refresh="60"' in html and '<meta http-equiv="refresh" content="60">' in html
    assert 'data-running="0"' in html and "favicon.svg" in html
    add_run(app.state.web.store, "nikki", 1, outcome="running")
    html = client.get("/errors").text
    assert 'id="favicon"' in html and "favicon-running.svg" in html and 'data-running="1"' in html
    assert "1 running" in html


def test_the_overview_is_drawn_once_a_second_while_nothing_is_committed(app, client, monkeypatch):
    """Web.render_kept: the same request in the same second, with nothing committed, gets the page drawn for the
    first; a commit (a new run) or the next second draws it again."""
    from runtracker.web import core, views

    add_run(app.state.web.store, "nikki", 1)
    drawn = []
    cards = views.cards
    monkeypatch.setattr(views, "cards", lambda web: drawn.append(1) or cards(web))
    now = core.now_ms()
    monkeypatch.setattr(core, "now_ms", lambda: now)  # one second, however long the test takes
    # PostgreSQL's change token moves with any write to the server (other tests'): a token of the test's own.
    store, token = app.state.web.store, [1]
    monkeypatch.setattr(store, "change_token", lambda: token[0])
    first = client.get("/").text
    assert client.get("/").text == first and len(drawn) == 1
    add_run(store, "laposta", 2)
    token[0] += 1
    assert 'data-pipeline="laposta"' in client.get("/").text and len(drawn) == 2
    monkeypatch.setattr(core, "now_ms", lambda: now + 1000)
    client.get("/")
    assert len(drawn) == 3
