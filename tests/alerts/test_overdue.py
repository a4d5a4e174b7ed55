"""Schedules end to end: a pipeline scheduled in Europe/Amsterdam across the DST changes is alerted as overdue once
its grace has passed, again only after the cooldown (kept across a monitor restart), and recovers with its next
success. The monitor runs in-process with a clock the test moves; the mails reach a real SMTP server."""

from __future__ import annotations

from alertlib import Clock, alerts_of

from helpers import open_fresh, start_app, wait_until
from runtracker.base.clock import to_ms
from runtracker.base.outcomes import SUCCESS
from runtracker.core import lifecycle
from runtracker.core.ending import Ending
from runtracker.storage import Runs

AMSTERDAM = """
[pipelines.nikki]
display_name = "Nikki sync"
schedule = "30 2 * * *"
timezone = "Europe/Amsterdam"
"""


def _ended_run(db_url: str, started_at: str, pipeline: str = "nikki") -> int:
    """A run of `pipeline` that started at `started_at` and succeeded (written as its owner would)."""
    store = open_fresh(db_url)
    try:
        run_id = Runs(store).insert_run(pipeline=pipeline, club_slug=None, started_at=started_at, hostname=None,
                                        pid=None, process_started_at=None, retention_cutoff=None)
        assert run_id is not None
        lifecycle.end_run(store, run_id, Ending(SUCCESS))
        return run_id
    finally:
        store.close()


def _pass_at(monitor, clock: Clock, at: str) -> None:
    """Move the clock and wait for two of the monitor's passes after it (the second starts after the move)."""
    clock.ms = to_ms(at)
    done = monitor.watcher.passes
    wait_until(lambda: monitor.watcher.passes >= done + 2, f"two passes of the monitor at {at}")


def test_overdue_on_the_spring_forward_day_alerts_once_keeps_its_cooldown_across_a_restart_and_recovers(
        db_url, mailbox, write_config, start_monitor):
    """02:30 does not exist on 2026-03-29: due at 03:00 CEST (01:00 UTC), overdue at 05:00 UTC with 4 h grace."""
    config = write_config({"mail": mailbox.url()}, AMSTERDAM)
    _ended_run(db_url, "2026-03-28T01:30:05.000Z")  # 02:30 CET the day before
    clock = Clock(to_ms("2026-03-29T04:59:00.000Z"))
    monitor = start_monitor(db_url, config, clock)
    _pass_at(monitor, clock, "2026-03-29T04:59:59.000Z")
    assert mailbox.messages == []

    _pass_at(monitor, clock, "2026-03-29T05:00:00.000Z")
    (subject, body), = mailbox.wait_for(1, "overdue mail")
    assert subject == "Nikki sync: overdue since today 03:00 CEST"
    assert "Nikki sync (nikki) is overdue: it was due today 03:00 CEST and has not started since (grace 4h)" in body
    assert "Its last run started yesterday 02:30 CET." in body
    monitor.stop()

    restarted = start_monitor(db_url, config, clock)
    _pass_at(restarted, clock, "2026-03-29T08:59:00.000Z")  # within the 4 h cooldown: nothing again
    assert len(mailbox.messages) == 1
    _pass_at(restarted, clock, "2026-03-29T09:00:00.000Z")
    subject, _ = mailbox.wait_for(2, "the repeated overdue mail")[1]
    assert subject == "Nikki sync: overdue since today 03:00 CEST"

    run_id = _ended_run(db_url, "2026-03-29T09:10:00.000Z")
    subject, _ = mailbox.wait_for(3, "the recovery mail")[2]
    assert subject == f"Nikki sync: run {run_id} succeeded again"
    _pass_at(restarted, clock, "2026-03-30T00:00:00.000Z")
    assert [a["event_key"] for a in alerts_of(db_url)] == [
        "overdue:nikki:2026-03-29T01:00:00.000Z", "overdue:nikki:2026-03-29T01:00:00.000Z:repeat:1",
        f"recovered:run:{run_id}"]
    assert len(mailbox.messages) == 3


def test_a_pipeline_run_once_on_the_fall_back_day_is_not_overdue_for_the_repeated_hour(db_url, mailbox, write_config,
                                                                                      start_monitor):
    """02:30 occurs twice on 2026-10-25; cron runs it once, at the first: that run covers the day."""
    config = write_config({"mail": mailbox.url()}, AMSTERDAM)
    _ended_run(db_url, "2026-10-25T00:30:02.000Z")  # 02:30 CEST, the first 02:30
    clock = Clock(to_ms("2026-10-25T05:31:00.000Z"))  # past the second 02:30 (01:30 UTC) + 4 h
    monitor = start_monitor(db_url, config, clock)
    _pass_at(monitor, clock, "2026-10-26T05:29:00.000Z")  # the next day's 02:30 CET + 4 h is 05:30 UTC
    assert mailbox.messages == []
    _pass_at(monitor, clock, "2026-10-26T05:30:00.000Z")
    (subject, _), = mailbox.wait_for(1, "overdue mail")
    assert subject == "Nikki sync: overdue since today 02:30 CET"


def test_a_pipeline_that_never_ran_is_overdue_only_from_when_it_is_watched(db_url, mailbox, receiver, write_config,
                                                                           start_monitor):
    """No run at all: the first scheduled time after the monitor first saw the pipeline counts. The webhook gets
    it as Apprise type `failure` (a sync that did not happen)."""
    config = write_config({"mail": mailbox.url(), "hook": receiver.url()}, AMSTERDAM)
    clock = Clock(to_ms("2026-06-01T12:00:00.000Z"))
    monitor = start_monitor(db_url, config, clock)
    _pass_at(monitor, clock, "2026-06-01T12:00:00.000Z")  # the monitor sees the pipeline for the first time
    _pass_at(monitor, clock, "2026-06-02T04:29:00.000Z")  # due 02:30 CEST = 00:30 UTC; + 4 h
    assert mailbox.messages == []
    _pass_at(monitor, clock, "2026-06-02T04:30:00.000Z")
    (subject, body), = mailbox.wait_for(1, "overdue mail")
    assert subject == "Nikki sync: overdue since today 02:30 CEST" and "It has no run in the database." in body
    post, = receiver.wait_for(1, "overdue post")
    assert post["title"] == subject and post["type"] == "failure"


def test_a_run_past_its_maximum_runtime_is_alerted_once(tmp_path, db_url, receiver, write_config, start_monitor):
    """max_runtime = "1h": a real pipeline still running 61 minutes later (by the monitor's clock) is too long."""
    config = write_config({"hook": receiver.url()}, '[pipelines.nikki]\nmax_runtime = "1h"\n')
    owner = start_app(tmp_path, """
import time
from runtracker import RunTracker
tracker = RunTracker("nikki")
print(tracker.start_run(), flush=True)
time.sleep(600)
""", db_url)
    try:
        run_id = int(owner.stdout.readline())
        clock = Clock(to_ms(_started_at(db_url, run_id)) + 59 * 60_000)
        monitor = start_monitor(db_url, config, clock)
        done = monitor.watcher.passes
        wait_until(lambda: monitor.watcher.passes >= done + 2, "two passes")
        assert receiver.posts == []
        clock.ms += 2 * 60_000
        done = monitor.watcher.passes
        wait_until(lambda: monitor.watcher.passes >= done + 3, "three passes")
        post, = receiver.wait_for(1, "too-long post")
        assert post["title"] == f"nikki: run {run_id} is taking too long (over 1h)"
        assert post["type"] == "warning"
        assert [a["event_key"] for a in alerts_of(db_url)] == [f"too_long:run:{run_id}"]
    finally:
        owner.kill()
        owner.communicate()


def _started_at(db_url: str, run_id: int) -> str:
    store = open_fresh(db_url)
    try:
        run = Runs(store).get_run(run_id)
        assert run is not None
        return str(run["started_at"])
    finally:
        store.close()
