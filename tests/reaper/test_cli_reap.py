"""`runtracker reap` and `runtracker monitor`: help, output, exit codes, and the monitor loop as a real service
that finds a SIGKILLed run and stops cleanly on SIGTERM or SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from helpers import Db, app_env, wait_until
from runtracker.cli import cli


@pytest.mark.parametrize("command", ["reap", "monitor"])
def test_reap_and_monitor_have_help(command):
    """-h explains the command and its options."""
    result = CliRunner().invoke(cli, [command, "-h"])
    assert result.exit_code == 0
    assert "--heartbeat-timeout" in result.output and "--db" in result.output
    assert "lost" in result.output.lower() or "process is gone" in result.output


def test_reap_with_nothing_to_reap_says_so_and_exits_0(db_url):
    """An empty database: `nothing to reap`, exit 0."""
    result = CliRunner().invoke(cli, ["reap", "--db", db_url])
    assert (result.exit_code, result.output) == (0, "nothing to reap\n")


def test_reap_json_prints_one_object_per_reaped_run(start_owner, db_url):
    """--json: one JSON object per reaped run, with its id, pipeline, reason and step in progress."""
    owner = start_owner("os._exit(5)\n")
    owner.finish()
    result = CliRunner().invoke(cli, ["reap", "--db", db_url, "--json"])
    assert result.exit_code == 0
    (line,) = result.output.splitlines()
    lost = json.loads(line)
    assert lost["run_id"] == owner.run_id and lost["pipeline"] == "nikki" and lost["reason"] == "pid_gone"
    assert lost["step_in_progress"] == "nikki-sync" and lost["detected_by"] == "runtracker reap"


def test_monitor_rejects_a_non_positive_interval(db_url):
    """--interval 0 is a usage error (exit 2), not a busy loop."""
    result = CliRunner().invoke(cli, ["monitor", "--db", db_url, "--interval", "0"])
    assert result.exit_code == 2


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_monitor_reaps_a_sigkilled_run_and_stops_cleanly(start_owner, db_url, owner_env, stop_with):
    """`runtracker monitor` as a service: a SIGKILLed run is reaped by the loop; SIGTERM / SIGINT end the loop
    with exit 0 after the pass in progress."""
    monitor = subprocess.Popen([sys.executable, "-m", "runtracker", "monitor", "--interval", "0.1"],
                               env=app_env(db_url, owner_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert monitor.stderr.readline().startswith("monitoring ")
        owner = start_owner("time.sleep(60)\n")
        owner.proc.kill()
        owner.finish()
        db = Db(db_url)
        wait_until(lambda: db.run(owner.run_id)["outcome"] == "failure", "the monitor to reap the run")
        assert db.run(owner.run_id)["reap_reason"] == "pid_gone"
        assert "runtracker monitor" in db.crash_rows(owner.run_id)[0]["error_message"]
        monitor.send_signal(stop_with)
        out, err = monitor.communicate(timeout=30)
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.communicate()
    assert monitor.returncode == 0, err
    assert f"reaped run {owner.run_id} (nikki)" in out
    assert err.strip().endswith("monitor stopped")
