"""The dashboard shows the monitor's view of schedules: "Overdue since ...", "Next: ..." and runs too long on the
overview, and the same in /metrics (HTTP level, the real app on each backend)."""

from __future__ import annotations

import os
import re

import pytest
from starlette.testclient import TestClient

from helpers import open_fresh
from runtracker.base.clock import iso, now_ms, to_ms
from runtracker.base.outcomes import SUCCESS
from runtracker.core import lifecycle, liveness
from runtracker.core.ending import Ending
from runtracker.settings.web import WebSettings
from runtracker.storage import Runs
from runtracker.web import passwords
from runtracker.web.app import create_app

CONFIG = """
[pipelines.nikki]
schedule = "0 * * * *"
grace = "1m"

[pipelines.freescout]
schedule = "0 0 1 1 *"
max_runtime = "1h"
"""


@pytest.fixture
def dashboard(db_url, tmp_path):
    """A logged-in client of the dashboard; nikki last started 3 h ago (hourly: overdue), freescout has a run
    going for 2 h (max 1 h: too long; the run's owner is this test process, alive)."""
    config = tmp_path / "runtracker.toml"
    config.write_text(CONFIG)
    store = open_fresh(db_url)
    nikki = Runs(store).insert_run(pipeline="nikki", club_slug=None, started_at=iso(now_ms() - 3 * 3600_000),
                                   hostname=None, pid=None, process_started_at=None, retention_cutoff=None)
    assert nikki is not None
    lifecycle.end_run(store, nikki, Ending(SUCCESS))
    long_run = Runs(store).insert_run(pipeline="freescout", club_slug=None, started_at=iso(now_ms() - 2 * 3600_000),
                                      hostname=liveness.hostname(), pid=os.getpid(), process_started_at=None,
                                      retention_cutoff=None)
    store.close()
    app = create_app(WebSettings(secret="a-test-secret-of-more-than-32-characters", db=db_url,
                                 config_path=str(config)))
    app.state.web.auth.add_user("alice", passwords.hash_password("correct horse battery"))
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post("/login", data={"username": "alice", "password": "correct horse battery",
                                           "csrf_token": token, "next": "/"})
    assert response.status_code == 303
    yield client, long_run
    app.state.web.store.close()


def test_the_overview_shows_overdue_next_run_and_runs_too_long(dashboard):
    """nikki's card says since when it is overdue and when it is due next; freescout's names its long run."""
    client, long_run = dashboard
    page = client.get("/").text
    nikki = page.split('data-pipeline="nikki"', 1)[1].split("</article>", 1)[0]
    freescout = page.split('data-pipeline="freescout"', 1)[1].split("</article>", 1)[0]
    # In the display zone (UTC here), the UTC time in the tooltip.
    assert re.search(r'data-testid="overdue" title="[^"]+ UTC">Overdue since (today|yesterday) \d\d:00 UTC<', nikki)
    assert re.search(r'data-testid="next-run" title="[^"]+ UTC">Next: (today|tomorrow) \d\d:00 UTC<', nikki)
    assert 'data-testid="overdue"' not in freescout
    assert f'<a href="/run/{long_run}">run {long_run}</a>' in freescout


def test_metrics_say_which_pipelines_are_overdue_when_they_run_next_and_how_many_runs_are_too_long(dashboard):
    """runtracker_overdue, runtracker_overdue_since_timestamp_seconds, runtracker_next_run_timestamp_seconds and
    runtracker_runs_too_long per scheduled pipeline."""
    client, _ = dashboard
    text = client.get("/metrics").text
    assert 'runtracker_overdue{pipeline="nikki"} 1.0' in text
    assert 'runtracker_overdue{pipeline="freescout"} 0.0' in text
    assert 'runtracker_runs_too_long{pipeline="freescout"} 1.0' in text
    next_run = float(re.search(r'runtracker_next_run_timestamp_seconds\{pipeline="nikki"\} (\S+)', text).group(1))
    assert 0 < next_run - now_ms() / 1000 <= 3600
    since = float(re.search(r'runtracker_overdue_since_timestamp_seconds\{pipeline="nikki"\} (\S+)', text).group(1))
    assert since < now_ms() / 1000 - 60


def test_the_api_gives_each_pipeline_its_overdue_since_next_due_and_runs_too_long(dashboard):
    """/api/pipelines carries the same status as the overview, as ISO times and run ids."""
    client, long_run = dashboard
    found = {p["name"]: p for p in client.get("/api/pipelines").json()["pipelines"]}
    nikki, freescout = found["nikki"], found["freescout"]
    assert nikki["overdue_since"] is not None and nikki["overdue_since"].endswith(":00:00.000Z")
    assert 0 < to_ms(nikki["next_due"]) - now_ms() <= 3600_000
    assert nikki["runs_too_long"] == []
    assert freescout["overdue_since"] is None and freescout["runs_too_long"] == [long_run]
