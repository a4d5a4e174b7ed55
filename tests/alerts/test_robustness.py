"""What must not hold the monitor up: an SMTP server that accepts and never answers delays neither reaping nor the
other channel; a config file broken while the monitor runs is not used, not even in part."""

from __future__ import annotations

import logging
import os
import socket
import time

from alertlib import Receiver, deliveries_of, wait_for_mark

from helpers import Db, open_fresh, run_app, start_app
from runtracker.alerts.watcher import Watcher


def test_a_hanging_smtp_server_delays_neither_reaping_nor_the_webhook(tmp_path, db_url, receiver, write_config,
                                                                       monitor_process):
    """The mail channel's server takes the connection and never greets: the SIGKILLed run is reaped and its
    webhook alert arrives while the mail delivery is still being tried."""
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(8)  # connections are taken by the kernel; nobody ever answers
    try:
        port = hanging.getsockname()[1]
        config = write_config({"mail": f"mailto://127.0.0.1:{port}?from=a@example.org&to=b@example.org"
                                       f"&mode=insecure&cto=30&rto=30", "hook": receiver.url()})
        monitor = monitor_process(db_url, config, "--interval", "3600")
        wait_for_mark(db_url)
        first = start_app(tmp_path, "import time\nfrom runtracker import RunTracker\nprint(RunTracker('nikki')"
                          ".start_run(), flush=True)\ntime.sleep(600)\n", db_url, name="first.py")
        second = start_app(tmp_path, "import time\nfrom runtracker import RunTracker\nprint(RunTracker('freescout')"
                           ".start_run(), flush=True)\ntime.sleep(600)\n", db_url, name="second.py")
        first_id, second_id = int(first.stdout.readline()), int(second.stdout.readline())
        time.sleep(0.5)  # the monitor's tick, which waits on new owners, comes every 0.25 s
        first.kill()
        first.wait()
        receiver.wait_for(1, "the first crash alert by webhook")
        second.kill()  # while the mail of the first is stuck in the hanging server
        second.wait()
        posts = receiver.wait_for(2, "the second crash alert by webhook")
        assert [p["title"] for p in posts] == [f"nikki: run {first_id} crashed (lost)",
                                               f"freescout: run {second_id} crashed (lost)"]
        assert Db(db_url).run(second_id)["reap_reason"] == "pid_gone"
        mails = [d for d in deliveries_of(db_url) if d["channel"] == "mail"]
        assert mails and all(d["status"] in ("sending", "pending") for d in mails)
        _, err = monitor.stop()
        assert "a channel's send was still hanging; not waiting for it" in err
    finally:
        hanging.close()


def test_a_config_file_broken_while_the_monitor_runs_is_not_used_at_all(db_url, write_config, caplog):
    """A valid edit applies at once; a broken one (an unknown channel in one pipeline) leaves the whole config
    before it in force, and says why once."""
    config = write_config({"hook": "json://127.0.0.1:9/a"}, '[pipelines.nikki]\nschedule = "0 7 * * *"\n')
    store = open_fresh(db_url)
    try:
        watcher = Watcher(store, str(config))
        config.write_text(config.read_text().replace('"0 7 * * *"', '"0 8 * * *"'))
        os.utime(config, ns=(time.time_ns(), time.time_ns() + 10**9))
        watcher.reload()
        assert watcher.config.pipeline("nikki").watch.schedule.expressions == ("0 8 * * *",)
        config.write_text(config.read_text().replace('"0 8 * * *"', '"0 9 * * *"\nalerts = ["nope"]'))
        os.utime(config, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
        with caplog.at_level(logging.ERROR, logger="runtracker"):
            watcher.reload()
            watcher.reload()
        assert watcher.config.pipeline("nikki").watch.schedule.expressions == ("0 8 * * *",)
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "cannot be used, the one before stays in force" in errors[0]
        assert "[pipelines.nikki] alerts: no channel 'nope'" in errors[0]
    finally:
        store.close()


def test_stopping_an_in_process_monitor_waits_for_the_send_in_progress(tmp_path, sqlite_url, write_config,
                                                                      start_monitor):
    """A webhook that answers 6 s after the post (longer than `Watcher.stop` waits by default, as a loaded machine's
    first send can take): stopping the monitor waits for it, so the delivery is recorded `sent` before its store
    closes and no sending thread is left to write into a closed database."""
    slow = Receiver(answer_after_s=6.0).start()
    try:
        monitor = start_monitor(sqlite_url, write_config({"hook": slow.url()}))
        wait_for_mark(sqlite_url)
        run_app(tmp_path, "from runtracker import RunTracker\nRunTracker('nikki').start_run()\n"
                          "raise SystemExit(3)\n", sqlite_url)
        slow.wait_for(1, "the post, not yet answered")
        monitor.stop()
        assert [d["status"] for d in deliveries_of(sqlite_url)] == ["sent"]
    finally:
        slow.stop()
