"""The crash panel shows a crash's last log lines apart from its traceback, escaped like every stored text."""

from __future__ import annotations

import html as html_lib
import re

from webdata import add_run

from runtracker.base.outcomes import FAILURE
from runtracker.core import lifecycle, logring
from runtracker.core.ending import Ending

SECTION = (f"{logring.HEADER} (the last 2 of this run, oldest first) ---\n"
           "2026-11-26T03:15:01.000Z INFO nikki.sync: member KNVB1004 synced\n"
           "2026-11-26T03:15:02.000Z WARNING nikki.sync: <script>alert('log')</script> slow API")


def _crashed(app, stack: str | None) -> int:
    store = app.state.web.store
    run_id = add_run(store, "nikki", 1, outcome="running", hostname="h1", pid=4242)
    lifecycle.end_run(store, run_id, Ending(FAILURE, kind="uncaught_exception", message="ValueError: v",
                                                      stack=stack, log_lines=SECTION))
    return run_id


def _pre(page: str, test_id: str) -> list[str]:
    return [html_lib.unescape(text) for text in re.findall(rf'data-testid="{test_id}">(.*?)</pre>', page, re.S)]


def test_the_crash_panel_shows_the_log_lines_apart_from_the_traceback(app, client):
    """The traceback and the last log lines are two blocks of the panel; the lines are escaped."""
    run_id = _crashed(app, "Traceback (most recent call last):\nValueError: v\n")
    page = client.get(f"/run/{run_id}").text
    assert _pre(page, "crash-stack") == ["Traceback (most recent call last):\nValueError: v"]
    assert _pre(page, "crash-log") == [SECTION]
    assert "<script>alert('log')" not in page and "&lt;script&gt;" in page
    assert page.index('data-testid="crash-stack"') < page.index('data-testid="crash-log"')


def test_a_crash_without_a_traceback_shows_only_its_log_lines(app, client):
    """A signal leaves no traceback: the panel has the log lines and no empty traceback block."""
    run_id = _crashed(app, None)
    page = client.get(f"/run/{run_id}").text
    assert _pre(page, "crash-stack") == [] and _pre(page, "crash-log") == [SECTION]


def test_the_api_gives_the_log_lines_of_a_crash(app, client):
    """/api/runs/<id>: the crash panel's data has the log lines; its stack is the traceback alone."""
    run_id = _crashed(app, "Traceback\nValueError: v")
    crash = client.get(f"/api/runs/{run_id}").json()["crash"]
    assert crash["stack"] == "Traceback\nValueError: v"
    assert [row["log_lines"] for row in crash["log_lines"]] == [SECTION]
