"""Runs whose process is gone, in a real browser on plain `runtracker serve` (no --monitor): a SIGKILLed
pipeline on this host is shown ended within seconds, with its real duration; another host's run whose heartbeat
is late says so on its page before the reaper ends it, and then says its end is an estimate
(docs/dashboard.md#a-run-whose-process-is-gone).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browserlib import Dashboard, login, start_dashboard, stop_dashboard
from playwright.sync_api import Page, expect

from helpers import BACKENDS, Db, kill_2s_in, open_fresh, start_app, wait_until
from runtracker.base.clock import iso, now_ms, to_ms
from runtracker.storage import Runs

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

OWNER = """
import time
from runtracker import RunTracker
tracker = RunTracker("nikki")
run_id = tracker.start_run()
tracker.start_step("nikki-sync")
print(run_id, flush=True)
time.sleep(600)
"""


def _outcome(page: Page) -> str | None:
    return page.locator("h1 .badge").get_attribute("data-outcome")


@pytest.mark.parametrize("dashboard_db_url", BACKENDS, indirect=True)
def test_plain_serve_shows_a_sigkilled_run_ended_within_5_s_with_its_real_duration(
        page: Page, dashboard: Dashboard, tmp_path: Path) -> None:
    """A pipeline on this host, SIGKILLed 2 s into its run (heartbeat every 10 s): its page, reloaded, shows it
    ended (`failure`, no "1 running" in the header) within 5 s of the kill, its end seen by `runtracker serve`
    as its process died, and a duration within 0.5 s of the real one; its card is no longer running."""
    owner = start_app(tmp_path, OWNER, dashboard.db_url, env={"RUNTRACKER_HEARTBEAT_S": "10"})
    try:
        assert owner.stdout is not None
        run_id = int(owner.stdout.readline())
        ready_ms = now_ms()
        login(page, dashboard.url)
        page.goto(f"{dashboard.url}/run/{run_id}")
        assert _outcome(page) == "running"
        expect(page.locator("#running-count")).to_have_text("1 running")
        started_ms = to_ms(Db(dashboard.db_url).run(run_id)["started_at"])
        assert started_ms is not None
        killed_ms = kill_2s_in(owner, started_ms, ready_ms)
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.communicate()

    def shown_ended() -> bool:
        page.reload()
        return _outcome(page) != "running"

    wait_until(shown_ended, "the run page to show the run ended", timeout=5, interval=0.2)
    expect(page.locator("h1 .badge")).to_have_attribute("data-outcome", "failure")
    expect(page.locator("#running-count")).to_have_text("")
    expect(page.locator("#running-count")).to_have_attribute("data-running", "0")
    # Seen as it died (or, on a machine so loaded that serve got no CPU for most of a second after the death,
    # from the last moment it knew the process alive: still within the tolerance, never the last write).
    end = page.get_by_test_id("run-end")
    expect(end).to_contain_text(re.compile(r"^when its process died, seen by runtracker serve|"
                                           r"^estimated from the last moment the monitor knew its process alive"))
    run = Db(dashboard.db_url).run(run_id)
    assert abs(run["duration_ms"] - (killed_ms - started_ms)) <= 500, (run["duration_ms"], killed_ms - started_ms)
    expect(page.get_by_test_id("run-duration")).to_contain_text(f"{run['duration_ms'] / 1000:.1f} s")
    expect(page.get_by_test_id("crash-detected")).to_contain_text("runtracker serve")
    page.goto(dashboard.url + "/")
    expect(page.locator('[data-testid=pipeline-card][data-pipeline="nikki"]')).to_have_attribute("data-status",
                                                                                                 "failure")


def _other_host_run(db_url: str, started_ms: int, heartbeat_ms: int) -> int:
    """A `running` run as a pipeline on host worker-2 would have written it, its last heartbeat at heartbeat_ms."""
    store = open_fresh(db_url)
    try:
        run_id = Runs(store).insert_run(pipeline="nikki", club_slug="rondo", started_at=iso(started_ms),
                                        hostname="worker-2", pid=4242, process_started_at=None, retention_cutoff=None)
        assert run_id is not None
        _set_heartbeat(store, run_id, heartbeat_ms)
        return run_id
    finally:
        store.close()


def _set_heartbeat(store, run_id: int, at_ms: int) -> None:  # type: ignore[no-untyped-def]
    with store.transaction() as cur:
        cur.execute(store.sql("UPDATE runs SET heartbeat_at = ? WHERE id = ?"), (iso(at_ms), run_id))


def test_a_late_heartbeat_shows_on_the_run_page_before_the_run_is_reaped(page: Page, tmp_path: Path,
                                                                         dashboard_db_url: str) -> None:
    """Another host's run whose heartbeat is 7 minutes old (heartbeat every 10 s, reaped after an hour here): its
    page warns "late" while it is still `running`; a run beating now does not. Once its heartbeat is older
    than the timeout, plain `serve` reaps it, and its page says the end is estimated from that heartbeat."""
    now = now_ms()
    late = _other_host_run(dashboard_db_url, now - 3 * 3600_000, now - 7 * 60_000)
    fresh = _other_host_run(dashboard_db_url, now - 3 * 3600_000, now)
    dashboard = start_dashboard(dashboard_db_url, tmp_path / "dashboard" / "serve.log",
                                env={"RUNTRACKER_HEARTBEAT_S": "10", "RUNTRACKER_HEARTBEAT_TIMEOUT_S": "3600"})
    try:
        login(page, dashboard.url)
        page.goto(f"{dashboard.url}/run/{late}")
        assert _outcome(page) == "running"
        expect(page.get_by_test_id("run-heartbeat")).to_have_text("7 min ago — late")
        expect(page.get_by_test_id("heartbeat-late")).to_contain_text("No heartbeat for 7 min")
        expect(page.get_by_test_id("heartbeat-late")).to_contain_text("older than 1h 00m")
        store = open_fresh(dashboard_db_url)
        try:
            _set_heartbeat(store, fresh, now_ms())  # beating: a heartbeat just now
            page.goto(f"{dashboard.url}/run/{fresh}")
            expect(page.get_by_test_id("run-heartbeat")).to_have_text(re.compile(r"^\d+ s ago$"))
            expect(page.get_by_test_id("heartbeat-late")).to_have_count(0)
            beat_ms = now - 2 * 3600_000
            _set_heartbeat(store, late, beat_ms)
        finally:
            store.close()

        def shown_ended() -> bool:
            page.goto(f"{dashboard.url}/run/{late}")
            return _outcome(page) != "running"

        wait_until(shown_ended, "serve to reap the run whose heartbeat is past the timeout", timeout=60,
                   interval=0.5)
        end = page.get_by_test_id("run-end")
        expect(end).to_have_attribute("data-estimated", "1")
        expect(end).to_contain_text(f"estimated from the last heartbeat at {iso(beat_ms)}")
        expect(page.get_by_test_id("run-duration")).to_have_text("1h 00m at least (its end is estimated)")
        expect(page.get_by_test_id("heartbeat-late")).to_have_count(0)
        assert Db(dashboard_db_url).run(fresh)["outcome"] == "running"
    except BaseException:
        stop_dashboard(dashboard)
        print(f"--- runtracker serve output ---\n{dashboard.output()}")
        raise
    stop_dashboard(dashboard)
