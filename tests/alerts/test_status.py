"""What the dashboard says about schedules: "Overdue since ...", "Next: ...", and runs too long, from the facts it
reads (read-only), by the same rule as the monitor's alerts (runtracker.base.status)."""

from __future__ import annotations

import pytest

from helpers import open_fresh
from runtracker.alerts.watcher import Watcher
from runtracker.base.clock import iso, to_ms
from runtracker.base.outcomes import SUCCESS
from runtracker.core import lifecycle
from runtracker.core.ending import Ending
from runtracker.settings.configfile import load
from runtracker.settings.web import WebSettings
from runtracker.storage import Runs
from runtracker.storage.alerts import AlertStore
from runtracker.web import present
from runtracker.web.core import Web

CONFIG = """
[defaults]
timezone = "Europe/Amsterdam"
max_runtime = "3h"

[pipelines.nikki]
schedule = "0 7 * * *"

[pipelines.freescout]
schedule = "0 7 * * *"
max_runtime = "1h"

[pipelines.backup]
command = ["true"]

[pipelines.newcomer]
schedule = "0 7 * * *"
"""
NOW = "2026-07-02T11:00:00.000Z"


@pytest.fixture
def setup(db_url, tmp_path):
    """nikki last ran yesterday and missed today's 07:00 by over 4 h; freescout ran today and has a run going for
    2 h; backup has no schedule; newcomer never ran and a monitor first watched it two days ago; `adhoc` is in no
    file and has a run going for 4 h ([defaults] max_runtime 3 h)."""
    path = tmp_path / "runtracker.toml"
    path.write_text(CONFIG)
    store = open_fresh(db_url)
    for pipeline, started in (("nikki", "2026-07-01T05:00:03.000Z"), ("freescout", "2026-07-02T05:00:03.000Z")):
        run_id = Runs(store).insert_run(pipeline=pipeline, club_slug=None, started_at=started, hostname=None, pid=None,
                                        process_started_at=None, retention_cutoff=None)
        assert run_id is not None
        lifecycle.end_run(store, run_id, Ending(SUCCESS))
    running = []
    for pipeline, started in (("freescout", "2026-07-02T08:59:00.000Z"), ("adhoc", "2026-07-02T07:00:00.000Z")):
        run_id = Runs(store).insert_run(pipeline=pipeline, club_slug=None, started_at=started, hostname=None, pid=None,
                                        process_started_at=None, retention_cutoff=None)
        running.append(run_id)
    AlertStore(store).pipeline_states(["newcomer"], "2026-06-30T12:00:00.000Z")
    web = Web(WebSettings(secret="s" * 40, db=db_url, config_path=str(path)), store)
    yield web, path, running
    store.close()


def _statuses(web):
    names = ["adhoc", "backup", "freescout", "newcomer", "nikki"]
    return web.statuses(names, web.dash.latest_runs(names, 2), web.dash.running_runs(), to_ms(NOW))


def test_overview_status_says_overdue_since_next_run_and_too_long(setup):
    """Times in the display zone (here Amsterdam's); a run too long names its id; a pipeline without a schedule
    has no lines."""
    web, _, (long_run, adhoc_run) = setup
    statuses = _statuses(web)
    with present.in_zone(present.DisplayZone("Europe/Amsterdam", "user")):
        lines = {name: present.schedule(status, to_ms(NOW)) for name, status in statuses.items()}
    assert lines["nikki"]["overdue_text"] == "Overdue since today 07:00 CEST"
    assert lines["nikki"]["next_text"] == lines["freescout"]["next_text"] == "Next: tomorrow 07:00 CEST"
    assert lines["freescout"]["overdue_text"] is None and lines["freescout"]["too_long"] == [long_run]
    assert lines["nikki"]["too_long"] == []
    assert lines["backup"] == {"overdue_text": None, "overdue_utc": None, "next_text": None, "next_utc": None,
                               "too_long": []}
    assert lines["newcomer"]["overdue_text"] == "Overdue since yesterday 07:00 CEST"
    assert lines["adhoc"]["too_long"] == [adhoc_run] and statuses["adhoc"].watched


def test_the_dashboard_and_the_monitor_decide_the_same_status(setup):
    """For the same database, config and time, the overview's statuses are the monitor's (one rule)."""
    web, path, _ = setup
    ours = _statuses(web)
    watcher = Watcher(web.store, str(path), clock=lambda: to_ms(NOW))
    config = load(str(path))
    states = AlertStore(web.store).pipeline_states([p.name for p in config.pipelines.values()
                                                    if p.watch.schedule is not None], iso(to_ms(NOW)))
    theirs = watcher.statuses(Runs(web.store).running_runs(), states, to_ms(NOW))
    assert set(theirs) == {"nikki", "freescout", "newcomer", "adhoc"}
    for name, status in theirs.items():
        assert (status.overdue_since_ms, status.too_long, status.next_due_ms, status.last_started_ms) == \
            (ours[name].overdue_since_ms, ours[name].too_long, ours[name].next_due_ms, ours[name].last_started_ms)
