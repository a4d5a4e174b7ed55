"""What the dashboard shows about schedules (runtracker.alerts.status): "Overdue since ...", "Next: ...", and runs
too long, by the monitor's rules, read-only."""

from __future__ import annotations

from helpers import open_fresh
from runtracker.alerts.status import Schedules
from runtracker.base.clock import to_ms
from runtracker.base.outcomes import SUCCESS
from runtracker.configfile import parse
from runtracker.core import lifecycle
from runtracker.storage import Runs

CONFIG = {
    "defaults": {"timezone": "Europe/Amsterdam"},
    "pipelines": {
        "nikki": {"schedule": "0 7 * * *"},
        "freescout": {"schedule": "0 7 * * *", "max_runtime": "1h"},
        "backup": {"command": "true"},
    },
}


def test_overview_status_says_overdue_since_next_run_and_too_long(db_url):
    """nikki last ran yesterday and missed today's 07:00 by over 4 h; freescout ran today and has a run going
    for 2 h; backup has no schedule and no status."""
    store = open_fresh(db_url)
    try:
        for pipeline, started in (("nikki", "2026-07-01T05:00:03.000Z"), ("freescout", "2026-07-02T05:00:03.000Z")):
            run_id = Runs(store).insert_run(pipeline=pipeline, club_slug=None, started_at=started, hostname=None,
                                            pid=None, process_started_at=None, retention_cutoff=None)
            assert run_id is not None
            lifecycle.end_run(store, run_id, lifecycle.Ending(SUCCESS))
        running = [{"id": 99, "pipeline": "freescout", "started_at": "2026-07-02T08:59:00.000Z"}]
        found = Schedules().statuses(store, parse(CONFIG), to_ms("2026-07-02T11:00:00.000Z"), running)
    finally:
        store.close()
    assert set(found) == {"nikki", "freescout"}
    assert found["nikki"].overdue_text == "Overdue since today 07:00 CEST"
    assert found["nikki"].next_text == found["freescout"].next_text == "Next: tomorrow 07:00 CEST"
    assert found["freescout"].overdue_text is None and found["freescout"].too_long == [99]
    assert found["nikki"].too_long == []
