"""PostgreSQL going away and coming back while a pipeline runs: a start whose answer is lost is written once, a
start or end that failed in the outage is written by the next call that can (with the time it was asked), and an
end the process could not write before it exited is written by the reaper as asked, not as a crash."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from helpers import Db, app_env
from runtracker import RunTracker
from runtracker.base.clock import ms_between, now_ms, to_ms
from runtracker.cli import cli


def test_a_start_whose_commit_answer_is_lost_is_written_once(pg_url, proxy):
    """The connection dies after start_run's INSERT committed, before its answer: the run is written once."""
    t = RunTracker("nikki", db=proxy.url(pg_url))
    t.start_run()
    t.end_run("success")  # the schema is made and the connection open: the next COMMIT is the start's
    proxy.cut_after_commit()
    assert t.start_run() is None  # it does not know the row exists
    assert proxy.cuts == 1
    step = t.start_step("download")  # writes the start again: finds the row its first try committed
    t.end_step(step, "success", created=2)
    assert t.end_run("success")
    runs = Db(pg_url).runs()
    assert len(runs) == 2, runs
    assert [r["outcome"] for r in runs] == ["success", "success"]
    assert runs[-1]["total_created"] == 2


def later_than(ms: int) -> None:
    """Wait until the clock's millisecond is past `ms` (at most a millisecond): a write made now is later."""
    while now_ms() <= ms:
        pass


@pytest.mark.swallows
def test_an_end_that_failed_in_an_outage_is_written_at_the_next_call_with_its_time(pg_url, proxy):
    """end_run's COMMIT is lost with the connection: the next start_run writes that end, at the moment end_run
    was called, instead of leaving the run `running` until the process exits."""
    t = RunTracker("nikki", db=proxy.url(pg_url))
    first = t.start_run()
    proxy.cut_before_commit()
    asked_from = now_ms()
    assert not t.end_run("partial", {"rows": 3})
    asked_to = now_ms()
    assert proxy.cuts == 1 and Db(pg_url).run(first)["outcome"] == "running"
    later_than(asked_to)
    assert t.start_run() is not None
    run = Db(pg_url).run(first)
    assert run["outcome"] == "partial" and json.loads(run["summary_json"]) == {"rows": 3}
    assert asked_from <= to_ms(run["finished_at"]) <= asked_to
    assert run["duration_ms"] == ms_between(run["started_at"], run["finished_at"])
    assert t.end_run("success")


@pytest.mark.swallows
def test_a_start_that_failed_in_an_outage_is_written_at_the_next_call_with_its_time(pg_url, proxy):
    """start_run's COMMIT is lost with the connection: its next call writes the run, started when start_run was
    called."""
    t = RunTracker("nikki", db=proxy.url(pg_url))
    t.start_run()
    t.end_run("success")
    proxy.cut_before_commit()
    asked_from = now_ms()
    assert t.start_run() is None
    asked_to = now_ms()
    later_than(asked_to)
    step = t.start_step("download")
    assert step is not None
    run = Db(pg_url).runs()[-1]
    assert asked_from <= to_ms(run["started_at"]) <= asked_to and run["outcome"] == "running"
    assert t.end_run("success")
    assert len(Db(pg_url).runs()) == 2


ASKS_PARTIAL_IN_THE_OUTAGE = """
import sys
import runtracker.storage.postgres as pg
pg.CRASH_RETRY_S = 0.3  # the exit hook need not try for 5 s
from runtracker import RunTracker
from runtracker.base.clock import now_ms
t = RunTracker("nikki")
t.start_run()
t.start_step("nikki-sync")
print("ready", flush=True)
sys.stdin.readline()
before = now_ms()
ended = t.end_run("partial", {"rows": 3})
print("asked", before, now_ms(), flush=True)
print("end_run", ended, flush=True)
"""


@pytest.mark.subprocess
def test_an_end_asked_in_an_outage_before_exit_is_written_by_the_reaper_as_asked(tmp_path, pg_url, proxy,
                                                                                 monkeypatch):
    """end_run('partial') while the server is away, then the process exits: the reaper writes that end from the
    process's last words (outcome, stats, time asked), not a crash, and reports no lost run."""
    import subprocess
    import sys

    from runtracker.alerts.messages import run_event

    monkeypatch.setenv("RUNTRACKER_CRASH_DIR", str(tmp_path / "crash"))
    app = tmp_path / "app.py"
    app.write_text(ASKS_PARTIAL_IN_THE_OUTAGE)
    proc = subprocess.Popen([sys.executable, str(app)], env=app_env(proxy.url(pg_url)), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    proxy.reject()
    proxy.drop_all()
    out, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0 and "end_run False" in out, err
    asked_from, asked_to = (int(ms) for ms in out.split("asked ", 1)[1].split()[:2])
    db = Db(pg_url)
    run_id = db.run()["id"]
    assert db.run(run_id)["outcome"] == "running"
    proxy.forward()
    result = CliRunner().invoke(cli, ["reap", "--db", pg_url])
    assert result.exit_code == 0 and f"reaped run {run_id}" not in result.output, result.output
    run = db.run(run_id)
    assert run["outcome"] == "partial" and json.loads(run["summary_json"]) == {"rows": 3}
    assert run["reaped_at"] is None and db.crash_rows(run_id) == []
    assert asked_from <= to_ms(run["finished_at"]) <= asked_to  # the moment asked, not the reaping's
    assert [s["outcome"] for s in db.steps(run_id)] == ["partial"]
    assert run_event(run) == ("partial", None)
    assert list((tmp_path / "crash").iterdir()) == []


@pytest.mark.swallows
def test_a_server_that_refuses_at_once_is_tried_again_within_seconds_however_long_it_refuses():
    """Connects refused at once (a server restarting) pause calls for at most PAUSE_MAX_QUICK_S, not 30 s: the
    pipeline finds the restarted server, and writes what waited, within seconds of its return."""
    import time

    from runtracker.storage.postgres import PAUSE_MAX_QUICK_S, PostgresStore

    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test")
    for _ in range(8):
        store._pause_until = 0.0  # the pause is over: the next call tries to connect again
        with pytest.raises(Exception, match="Connection refused"):
            store.upgrade_schema()
    assert store._pause_until - time.monotonic() <= PAUSE_MAX_QUICK_S
