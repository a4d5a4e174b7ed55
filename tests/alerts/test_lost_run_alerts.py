"""What a lost run's alert says about its end: the real duration when the monitor saw the process die ("after
2.0…s", not the 0.059 s up to its last write), and "at least", what the end was estimated from and when it was
found dead when nobody saw it die. A real `runtracker monitor`, a real webhook receiver, a real SIGKILL."""

from __future__ import annotations

import re

from alertlib import wait_for_mark

from helpers import Db, kill_2s_in, open_fresh, start_app
from runtracker.base.clock import iso, now_ms, to_ms
from runtracker.storage import Runs

OWNER = """
import time
from runtracker import RunTracker
tracker = RunTracker("nikki")
run_id = tracker.start_run()
tracker.start_step("nikki-sync")
print(run_id, flush=True)
time.sleep(600)
"""


def test_the_alert_of_a_run_killed_2s_in_says_it_ran_2s(tmp_path, db_url, receiver, write_config, monitor_process):
    """SIGKILLed 2 s into its run (its heartbeat every 10 s): the crash alert says "after 2.xs" within 0.5 s of
    the real duration, and nothing about an estimate."""
    config = write_config({"hook": receiver.url()})
    monitor_process(db_url, config, "--interval", "3600")
    wait_for_mark(db_url)
    owner = start_app(tmp_path, OWNER, db_url, env={"RUNTRACKER_HEARTBEAT_S": "10"})
    try:
        assert owner.stdout is not None
        run_id = int(owner.stdout.readline())
        ready_ms = now_ms()
        started_ms = to_ms(Db(db_url).run(run_id)["started_at"])
        assert started_ms is not None
        killed_ms = kill_2s_in(owner, started_ms, ready_ms)
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.communicate()

    post, = receiver.wait_for(1, "the crash alert")
    assert post["title"] == f"nikki: run {run_id} crashed (lost)"
    # (On a machine so loaded that the monitor got no CPU for most of a second after the death, the end is the
    # last moment it knew the process alive, "at least", still within the tolerance: never the last write.)
    took = re.search(r" after (?:at least )?([\d.]+)s[. ]", post["message"])
    assert took is not None, post["message"]
    assert abs(float(took.group(1)) * 1000 - (killed_ms - started_ms)) <= 500, (took.group(1), killed_ms - started_ms)
    assert "the last step or error" not in post["message"] and "heartbeat" not in post["message"], post["message"]


def test_the_alert_of_a_run_nobody_saw_die_says_its_end_is_estimated_and_from_what(db_url, receiver, write_config,
                                                                                    monitor_process):
    """Another host's run, silent for 2 h: reaped by heartbeat timeout, its alert says it ran "at least" 1h, its
    end estimated from the last heartbeat, and when it was found dead."""
    config = write_config({"hook": receiver.url()}, more='[pipelines.nikki]\ntimezone = "UTC"\n')
    monitor_process(db_url, config, "--interval", "1")
    wait_for_mark(db_url)
    now = now_ms()
    store = open_fresh(db_url)
    try:
        run_id = Runs(store).insert_run(pipeline="nikki", club_slug="rondo", started_at=iso(now - 3 * 3600_000),
                                        hostname="worker-2", pid=4242, process_started_at=None, retention_cutoff=None)
        with store.transaction() as cur:
            cur.execute(store.sql("UPDATE runs SET heartbeat_at = ? WHERE id = ?"), (iso(now - 2 * 3600_000), run_id))
    finally:
        store.close()

    post, = receiver.wait_for(1, "the crash alert")
    assert post["title"] == f"nikki: run {run_id} crashed (lost)"
    assert " after at least 1h (the end is estimated from the last heartbeat: nobody saw it die; found dead " \
        in post["message"], post["message"]
    assert "Crash kind: lost (heartbeat_timeout)." in post["message"]
