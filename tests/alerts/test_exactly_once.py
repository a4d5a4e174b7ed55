"""Exactly one alert per event: the event's key decides between two monitors at once (two hosts on one database),
a restarted monitor neither sends again nor forgets, and a channel that is down is retried while the others get
their alert and the pipeline goes on as if nothing happened."""

from __future__ import annotations

import threading

from alertlib import Clock, Receiver, alerts_of, deliveries_of, wait_for_mark

from helpers import Db, open_fresh, run_app, wait_until
from runtracker.base.clock import iso, now_ms
from runtracker.storage.alerts import AlertStore, NewAlert

FAILING = """
import sys
from runtracker import RunTracker
tracker = RunTracker(sys.argv[1] if len(sys.argv) > 1 else "nikki")
tracker.start_run()
tracker.record_error(step_name="nikki-sync", error_message="member not found")
tracker.end_run("failure")
"""


def _race(db_url: str, attempt) -> list[object]:
    """Run `attempt(alert_store)` in eight threads at once, each on a store (a connection) of its own."""
    stores = [open_fresh(db_url) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    results: list[object] = []

    def one(store) -> None:
        barrier.wait()
        results.append(attempt(AlertStore(store)))

    threads = [threading.Thread(target=one, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    return results


def test_of_monitors_raising_one_event_at_once_exactly_one_owns_it(db_url):
    """Eight connections insert `failed:run:7` at the same moment: one gets an id, the others None."""
    alert = NewAlert("failed:run:7", "failed", "nikki", 7, "nikki: run 7 failed", "body")
    results = _race(db_url, lambda a: a.raise_alert(alert, ["mail", "hook"], iso(now_ms()), "test"))
    assert len([r for r in results if r is not None]) == 1
    assert [(d["channel"], d["status"]) for d in deliveries_of(db_url)] == [("mail", "pending"), ("hook", "pending")]


def test_of_monitors_claiming_one_delivery_at_once_exactly_one_sends_it(db_url):
    """Eight claims of the same pending delivery: one wins the compare-and-set."""
    store = open_fresh(db_url)
    AlertStore(store).raise_alert(NewAlert("failed:run:7", "failed", "nikki", 7, "t", "b"), ["mail"],
                                  iso(now_ms()), "test")
    delivery, = AlertStore(store).due_deliveries("mail", iso(now_ms()))
    store.close()
    results = _race(db_url, lambda a: a.claim(delivery, "monitor", iso(now_ms() + 60_000)))
    assert sorted(results) == [False] * 7 + [True]
    assert deliveries_of(db_url)[0]["attempts"] == 1


def test_two_monitor_processes_on_one_database_send_each_alert_once(tmp_path, db_url, mailbox, receiver,
                                                                    write_config, monitor_process):
    """Two `runtracker monitor` processes (as on two hosts), ten failed runs: ten mails, ten posts, no double."""
    config = write_config({"mail": mailbox.url(), "hook": receiver.url()})
    first, second = monitor_process(db_url, config, "--interval", "1"), monitor_process(db_url, config,
                                                                                         "--interval", "1")
    wait_for_mark(db_url)
    for n in range(10):
        assert run_app(tmp_path, FAILING, db_url, args=[f"pipeline-{n}"]).returncode == 0
    mailbox.wait_for(10)
    receiver.wait_for(10)
    wait_until(lambda: all(d["status"] == "sent" for d in deliveries_of(db_url)) or None, "every delivery sent")
    first.stop()
    second.stop()
    assert sorted(s for s, _ in mailbox.messages) == sorted(p["title"] for p in receiver.posts)
    assert len(set(s for s, _ in mailbox.messages)) == len(mailbox.messages) == 10
    assert len(alerts_of(db_url)) == 10
    assert {d["attempts"] for d in deliveries_of(db_url)} == {1}


def test_a_restarted_monitor_neither_sends_again_nor_forgets_a_run_that_ended_while_it_was_away(
        tmp_path, db_url, mailbox, write_config, monitor_process):
    """Run 1 is alerted; the monitor stops; run 2 fails meanwhile; the new monitor alerts run 2 only."""
    config = write_config({"mail": mailbox.url()})
    monitor = monitor_process(db_url, config, "--interval", "1")
    wait_for_mark(db_url)
    run_app(tmp_path, FAILING, db_url)
    mailbox.wait_for(1)
    monitor.stop()
    run_app(tmp_path, FAILING, db_url)
    first, second = (r["id"] for r in Db(db_url).runs())

    restarted = monitor_process(db_url, config, "--interval", "1")
    mailbox.wait_for(2)
    run_app(tmp_path, FAILING, db_url, args=["freescout"])  # a later alert: the restarted one has looked at run 2
    mailbox.wait_for(3)
    restarted.stop()
    assert [s for s, _ in mailbox.messages] == [f"nikki: run {first} failed", f"nikki: run {second} failed",
                                                f"freescout: run {second + 1} failed"]


def test_a_channel_that_is_down_is_retried_with_backoff_while_the_other_gets_its_alert(
        tmp_path, db_url, mailbox, write_config, start_monitor):
    """The webhook's receiver is down: the mail goes at once, the pipeline exits as always, the post is tried
    again 10 s later (by the monitor's clock) and arrives once the receiver is up."""
    down = Receiver()
    config = write_config({"mail": mailbox.url(), "hook": down.url()})
    clock = Clock(now_ms())
    start_monitor(db_url, config, clock)
    result = run_app(tmp_path, FAILING, db_url)
    assert result.returncode == 0 and result.stderr == ""
    assert Db(db_url).run()["outcome"] == "failure"

    (subject, _), = mailbox.wait_for(1)
    hook = wait_until(lambda: next((d for d in deliveries_of(db_url) if d["channel"] == "hook"
                                    and d["attempts"] == 1 and d["status"] == "pending"), None), "a failed attempt")
    assert hook["last_error"] and hook["next_attempt_at"] > iso(clock.ms + 9_000)
    down.start()
    try:
        assert down.posts == []
        clock.ms += 10_001
        post, = down.wait_for(1, "the retried post")
        assert post["title"] == subject
        wait_until(lambda: next((d for d in deliveries_of(db_url) if d["channel"] == "hook"
                                 and d["status"] == "sent"), None), "the delivery marked sent")
        assert [d["attempts"] for d in deliveries_of(db_url)] == [1, 2]
    finally:
        down.stop()
