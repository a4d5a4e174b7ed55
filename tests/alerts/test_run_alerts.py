"""A run that ends badly reaches people: a real pipeline process fails or is SIGKILLed, a real `runtracker monitor`
finds it, and the alert arrives by mail (a real SMTP server) and by webhook (a real HTTP receiver), once."""

from __future__ import annotations

import json

from alertlib import alerts_of, deliveries_of, wait_for_mark

from helpers import Db, open_fresh, run_app, start_app, wait_until
from runtracker import RunTracker
from runtracker.alerts.watcher import Watcher
from runtracker.storage import Runs

FAILING = """
from runtracker import RunTracker
tracker = RunTracker("nikki")
tracker.start_run()
step = tracker.start_step("nikki-sync")
tracker.record_error(step_name="nikki-sync", step_id=step, member_identifier="KNVB1004",
                     error_message="member not found\\nsecond line of it")
tracker.end_step(step, "failure", failed=1)
tracker.end_run("failure")
"""

ENDING = """
import sys
from runtracker import RunTracker
tracker = RunTracker("nikki")
tracker.start_run()
tracker.end_run(sys.argv[1])
"""


def test_a_failed_run_is_mailed_and_posted_once_with_its_errors_and_a_link(tmp_path, db_url, mailbox, receiver,
                                                                          write_config, monitor_process):
    """end_run("failure"): one mail and one webhook post naming the pipeline, what happened, the first error line
    and the run's page."""
    config = write_config({"mail": mailbox.url(), "hook": receiver.url()})
    monitor = monitor_process(db_url, config, "--interval", "1")
    wait_for_mark(db_url)

    assert run_app(tmp_path, FAILING, db_url).returncode == 0
    run_id = Db(db_url).run()["id"]

    (subject, body), = mailbox.wait_for(1)
    post, = receiver.wait_for(1)
    assert subject == post["title"] == f"nikki: run {run_id} failed"
    assert body.strip() == post["message"].strip()
    assert f"nikki: run {run_id} failed." in body
    assert "- nikki-sync, member KNVB1004: member not found" in body and "second line" not in body
    assert f"http://dash.example/run/{run_id}" in body
    wait_until(lambda: all(d["status"] == "sent" for d in deliveries_of(db_url)) or None, "both deliveries sent")
    assert [a["event_key"] for a in alerts_of(db_url)] == [f"failed:run:{run_id}"]
    monitor.stop()
    assert len(mailbox.messages) == 1 and len(receiver.posts) == 1


def test_a_sigkilled_run_is_reaped_by_the_monitor_at_once_and_alerted_as_crashed(tmp_path, db_url, mailbox,
                                                                                write_config, monitor_process):
    """The monitor waits on the owner's process: with an hour between passes it still reaps the SIGKILLed run
    (kind `lost`, pid_gone) and mails the crash."""
    config = write_config({"mail": mailbox.url()})
    monitor = monitor_process(db_url, config, "--interval", "3600")
    wait_for_mark(db_url)
    owner = start_app(tmp_path, """
import time
from runtracker import RunTracker
tracker = RunTracker("nikki")
run_id = tracker.start_run()
tracker.start_step("nikki-sync")
print(run_id, flush=True)
time.sleep(600)
""", db_url)
    run_id = int(owner.stdout.readline())
    wait_until(lambda: "watching" if _is_running(db_url, run_id) else None, "the run to be running")
    owner.kill()
    owner.wait()

    (subject, body), = mailbox.wait_for(1, "crash mail")
    run = Db(db_url).run(run_id)
    assert run["outcome"] == "failure" and run["reap_reason"] == "pid_gone"
    assert json.loads(run["summary_json"])["detected_by"] == "runtracker monitor"
    assert subject == f"nikki: run {run_id} crashed (lost)"
    assert "Crash kind: lost (pid_gone)." in body
    assert "- crash: process lost: pid" in body and "step in progress: nikki-sync" in body
    out, _ = monitor.stop()
    assert f"reaped run {run_id} (nikki)" in out


def _is_running(db_url: str, run_id: int) -> bool:
    return Db(db_url).run(run_id)["outcome"] == "running"


def test_the_first_success_after_a_failure_is_a_recovery_and_the_next_is_not(tmp_path, db_url, receiver,
                                                                              write_config, start_monitor):
    """failure → `failed`, posted as Apprise type `failure`; success → `recovered`, type `success`; another success
    → nothing; partial is off by default."""
    config = write_config({"hook": receiver.url()})
    start_monitor(db_url, config)
    for outcome in ("failure", "success", "success", "partial"):
        assert run_app(tmp_path, ENDING, db_url, args=[outcome]).returncode == 0
    runs = [r["id"] for r in Db(db_url).runs()]
    receiver.wait_for(2)
    wait_until(lambda: _mark_past(db_url, runs[-1]), "the monitor to look at every run")
    assert [a["event_key"] for a in alerts_of(db_url)] == [f"failed:run:{runs[0]}", f"recovered:run:{runs[1]}"]
    assert receiver.posts[1]["title"] == f"nikki: run {runs[1]} succeeded again"
    # What Slack, Discord, Teams and ntfy colour by: the webhook's `type` field.
    assert [post["type"] for post in receiver.posts] == ["failure", "success"]


def _mark_past(db_url: str, run_id: int) -> bool:
    from helpers import open_fresh
    from runtracker.storage.alerts import AlertStore

    store = open_fresh(db_url)
    try:
        return (AlertStore(store).mark("runs") or 0) > run_id
    finally:
        store.close()


def test_partial_runs_are_alerted_when_the_pipeline_asks(tmp_path, db_url, receiver, write_config, start_monitor):
    """alert_on = ["partial"]: a partial end is alerted, and nothing else of that pipeline is."""
    config = write_config({"hook": receiver.url()}, '[pipelines.nikki]\nalert_on = ["partial"]\n')
    start_monitor(db_url, config)
    for outcome in ("failure", "partial"):
        assert run_app(tmp_path, ENDING, db_url, args=[outcome]).returncode == 0
    last = Db(db_url).run()["id"]
    receiver.wait_for(1)
    wait_until(lambda: _mark_past(db_url, last), "the monitor to look at every run")
    assert [a["event_key"] for a in alerts_of(db_url)] == [f"partial:run:{last}"]
    assert receiver.posts[0]["title"] == f"nikki: run {last} ended partial"
    assert receiver.posts[0]["type"] == "warning"


def test_a_later_run_that_ended_is_never_judged_before_an_earlier_one_a_stale_running_list_still_shows(
        sqlite_url, write_config):
    """The monitor hands the watcher the `running` runs it read before waiting (a moment that is long on a
    loaded machine): run 1 fails and run 2 succeeds meanwhile, yet the list still shows run 1 running. Run 1
    is `failed` and run 2 its recovery, in that order, not run 2 first with nothing to recover."""
    config = write_config({"hook": "json://127.0.0.1:9/unused"})
    store = open_fresh(sqlite_url)
    try:
        watcher = Watcher(store, str(config))
        first = RunTracker("nikki", db=sqlite_url)
        first_id = first.start_run()
        watcher.tick()
        stale = Runs(store).running_runs()
        assert [r["id"] for r in stale] == [first_id]
        first.end_run("failure")
        second = RunTracker("nikki", db=sqlite_url)
        second_id = second.start_run()
        second.end_run("success")
        watcher.tick(stale)
        watcher.tick()
        assert [a["event_key"] for a in alerts_of(sqlite_url)] == [f"failed:run:{first_id}",
                                                                    f"recovered:run:{second_id}"]
    finally:
        store.close()
