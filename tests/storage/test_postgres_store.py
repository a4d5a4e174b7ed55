"""What is specific to PostgreSQL: the optional driver, a server that is down, slow, or drops our connection
mid-run, and a signal arriving while one of our transactions waits on the server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import pg_schemas
from helpers import Db, app_env, run_app, wait_until
from runtracker import RunTracker
from runtracker.cli import cli
from runtracker.storage.postgres import MISSING_DRIVER, SERVER_PAUSED, masked, to_pyformat

CLOSED_PORT_URL = "postgresql://postgres@127.0.0.1:1/test"




def app_name(url: str) -> str:
    return url.rsplit("application_name=", 1)[1]


def backends(url: str) -> list[dict]:
    """The server processes serving connections made with this URL."""
    cur = pg_schemas.admin().execute(
        "SELECT pid, state, wait_event_type FROM pg_stat_activity WHERE application_name = %s ORDER BY pid",
        (app_name(url),))
    return [dict(zip(("pid", "state", "wait"), row, strict=True)) for row in cur.fetchall()]


def terminate(pids) -> None:
    for pid in pids:
        pg_schemas.admin().execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_placeholders_are_rewritten_once_and_percent_signs_kept_literal():
    """`?` becomes `%s` outside quotes; `%` becomes `%%` everywhere, so LIKE patterns survive."""
    assert to_pyformat("SELECT a FROM t WHERE b = ? AND c LIKE '50%?' AND d = ?") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE '50%%?' AND d = %s")
    assert to_pyformat("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


def test_messages_never_show_the_password():
    """The store's URL, used in messages, hides a password given in the URL."""
    assert masked("postgresql://bob:s3cr%40t@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert masked("postgresql://bob@db/x?sslmode=require&password=pw&x=1") == (
        "postgresql://bob@db/x?sslmode=require&password=***&x=1")
    assert masked("postgresql://bob@db/x") == "postgresql://bob@db/x"


def test_import_runtracker_does_not_import_the_driver(sqlite_url):
    """`import runtracker` and a whole SQLite lifecycle never import psycopg."""
    code = ("import sys, runtracker\nt = runtracker.RunTracker('p'); t.start_run(); t.end_run()\n"
            "print('psycopg' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], env=app_env(sqlite_url), capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_missing_driver_names_the_extra_and_the_pipeline_goes_on(tmp_path, pg_url):
    """Without psycopg, a postgresql:// database logs how to install it; the pipeline runs to its end."""
    code = """
import sys
sys.modules["psycopg"] = None   # as if the driver were not installed
from runtracker import RunTracker
from runtracker.cli import cli
t = RunTracker("nikki")
print("run", t.start_run())
t.end_run("success")
print("pipeline went on")
"""
    result = run_app(tmp_path, code, pg_url)
    assert result.returncode == 0 and "run None" in result.stdout and "pipeline went on" in result.stdout
    assert MISSING_DRIVER in result.stderr and "Traceback" not in result.stderr
    assert "pip install runtracker[postgres]" in MISSING_DRIVER


def test_cli_without_the_driver_says_which_extra_to_install(tmp_path, pg_url):
    """`runtracker runs --db postgresql://...` without psycopg fails with the install hint, not a traceback."""
    code = ("import sys; sys.modules['psycopg'] = None\nfrom runtracker.cli import main\n"
            "sys.argv = ['runtracker', 'runs']\nmain()\n")
    result = run_app(tmp_path, code, pg_url)
    assert result.returncode == 1
    assert "pip install runtracker[postgres]" in result.stderr and "Traceback" not in result.stderr


DOWN_APP = """
import sys
from runtracker import RunTracker
from runtracker.cli import cli
t = RunTracker("nikki")
print("run", t.start_run())
s = t.start_step("nikki-sync")
t.record_errors("nikki-sync", s, ["a", "b"])
t.end_step(s, "success")
t.end_run("success")
print("pipeline went on")
sys.exit(7)
"""


def test_server_down_does_not_break_the_pipeline(tmp_path):
    """No server listening: every call gives up and logs; the pipeline ends with its own output and code."""
    result = run_app(tmp_path, DOWN_APP, CLOSED_PORT_URL)
    assert result.returncode == 7
    assert "run None" in result.stdout and "pipeline went on" in result.stdout
    assert "RunTracker.start_run failed" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.swallows
def test_after_a_failed_connect_calls_fail_fast_until_the_pause_ends(swallowed):
    """A call right after a failed connect does not wait for a server that just refused: it fails at once."""
    from runtracker.storage.postgres import PostgresStore

    store = PostgresStore(CLOSED_PORT_URL)
    with pytest.raises(Exception, match="Connection refused"):
        store.upgrade_schema()
    with pytest.raises(Exception, match=SERVER_PAUSED):
        store.upgrade_schema()
    store._pause_until = 0.0  # the pause is over
    with pytest.raises(Exception, match="Connection refused"):
        store.upgrade_schema()


def test_a_dropped_connection_between_calls_is_replaced_without_losing_a_call(pg_url):
    """The server drops the tracker's connection mid-run (as a restart does): every later call still commits."""
    t = RunTracker("nikki", db=pg_url)
    run_id = t.start_run()
    step = t.start_step("nikki-sync")
    terminate(b["pid"] for b in backends(pg_url))
    wait_until(lambda: not backends(pg_url), "the connection to go")
    t.record_errors("nikki-sync", step, ["a", "b"])
    terminate(b["pid"] for b in backends(pg_url))
    wait_until(lambda: not backends(pg_url), "the connection to go")
    t.end_step(step, "success", created=3)
    assert t.end_run("success")
    db = Db(pg_url)
    run = db.run(run_id)
    assert (run["outcome"], run["total_created"]) == ("success", 3)
    assert [e["error_message"] for e in db.errors(run_id)] == ["a", "b"]


def start(tmp_path, code: str, url: str) -> subprocess.Popen[str]:
    """The app in a subprocess that prints "ready" and then waits for a line on stdin before going on."""
    app = tmp_path / "app.py"
    app.write_text(code)
    proc = subprocess.Popen([sys.executable, str(app)], env=app_env(url), text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def go_on(proc: subprocess.Popen[str]) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()


READY = """
import sys
from runtracker import RunTracker
from runtracker.cli import cli
t = RunTracker("nikki")
t.start_run()
step = t.start_step("nikki-sync")
print("ready", flush=True)
sys.stdin.readline()
"""


def test_a_crash_after_the_connection_dropped_is_still_recorded(tmp_path, pg_url):
    """Connection dropped, then an uncaught exception: the crash handler reconnects and records it."""
    proc = start(tmp_path, READY + "raise ValueError('boom')\n", pg_url)
    terminate(b["pid"] for b in backends(pg_url))
    wait_until(lambda: not backends(pg_url), "the connection to go")
    go_on(proc)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and err.endswith("ValueError: boom\n")
    db = Db(pg_url)
    run = db.run()
    assert run["outcome"] == "failure" and json.loads(run["summary_json"])["kind"] == "uncaught_exception"
    assert [e["error_message"] for e in db.crash_rows(run["id"])] == ["ValueError: boom"]


def test_end_run_cut_off_by_a_dropped_connection_is_applied_at_exit(tmp_path, pg_url):
    """The connection drops while end_run waits on the server: the call gives up, and the exit hook applies it."""
    import psycopg

    proc = start(tmp_path, READY + "print('end_run', t.end_run('success'))\n", pg_url)
    run_id = Db(pg_url).run()["id"]
    with psycopg.connect(pg_url.replace("application_name=", "application_name=holder_")) as holder:
        holder.execute("SELECT id FROM runs WHERE id = %s FOR UPDATE", (run_id,))
        go_on(proc)
        (waiting,) = wait_until(lambda: [b for b in backends(pg_url) if b["wait"] == "Lock"], "end_run to wait")
        terminate([waiting["pid"]])
        wait_until(lambda: waiting["pid"] not in [b["pid"] for b in backends(pg_url)], "the connection to go")
        holder.rollback()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "end_run False" in out
    assert "RunTracker.end_run failed" in err and "Traceback" not in err
    run = Db(pg_url).run(run_id)
    assert run["outcome"] == "success" and run["finished_at"] is not None


def test_sigterm_while_a_call_waits_on_the_server_is_recorded_and_the_process_dies_by_it(tmp_path, pg_url):
    """SIGTERM lands while start_step waits inside its transaction: the interrupted call is rolled back on the
    server and the crash is written on a fresh connection."""
    import psycopg

    proc = start(tmp_path, READY + "t.start_step('nikki-upload')\nprint('not reached')\n", pg_url)
    run_id = Db(pg_url).run()["id"]
    with psycopg.connect(pg_url.replace("application_name=", "application_name=holder_")) as holder:
        holder.execute("SELECT id FROM runs WHERE id = %s FOR UPDATE", (run_id,))
        go_on(proc)
        (waiting,) = wait_until(lambda: [b for b in backends(pg_url) if b["wait"] == "Lock"], "start_step to wait")
        proc.send_signal(signal.SIGTERM)
        # The crash handler ends the interrupted call's server process, then waits for the run's row.
        wait_until(lambda: waiting["pid"] not in [b["pid"] for b in backends(pg_url)], "the old connection to go")
        holder.rollback()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM and "not reached" not in out and err == ""
    db = Db(pg_url)
    run = db.run(run_id)
    assert run["outcome"] == "failure" and json.loads(run["summary_json"])["signal"] == "SIGTERM"
    assert [s["step_name"] for s in db.steps(run_id)] == ["nikki-sync"]  # the interrupted insert is gone
    assert len(db.crash_rows(run_id)) == 1


def test_a_slow_server_makes_calls_give_up_not_hang(tmp_path, pg_url):
    """A call that waits on the server longer than the statement timeout gives up; the pipeline goes on."""
    import psycopg

    code = """
import sys
import runtracker.storage.postgres as pg
pg.STATEMENT_TIMEOUT_MS = 300   # so the test does not wait 10 s
from runtracker import RunTracker
from runtracker.cli import cli
t = RunTracker("nikki")
print("run", t.start_run())
print("pipeline went on")
sys.exit(5)
"""
    Db(pg_url).runs()  # the schema exists before the table is locked
    with psycopg.connect(pg_url.replace("application_name=", "application_name=holder_")) as holder:
        holder.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        result = run_app(tmp_path, code, pg_url)
        holder.rollback()
    assert result.returncode == 5 and "run None" in result.stdout and "pipeline went on" in result.stdout
    assert "statement timeout" in result.stderr and "Traceback" not in result.stderr




CRASH_LATER = READY + "raise ValueError('boom')\n"


def test_a_crash_during_a_short_outage_is_recorded_when_the_server_is_back(tmp_path, pg_url, proxy):
    """The server goes away, the pipeline crashes, the server comes back while the crash handler retries:
    the crash is recorded by the crash handler itself."""
    proc = start(tmp_path, CRASH_LATER, proxy.url(pg_url))
    proxy.reject()
    proxy.drop_all()
    go_on(proc)
    wait_until(lambda: proxy.rejected >= 1, "the crash handler to try the server")
    proxy.forward()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and err.endswith("ValueError: boom\n")
    db = Db(pg_url)
    run = db.run()
    assert run["outcome"] == "failure" and json.loads(run["summary_json"])["kind"] == "uncaught_exception"
    assert [e["error_message"] for e in db.crash_rows(run["id"])] == ["ValueError: boom"]


def test_a_crash_while_the_server_stays_unreachable_is_ended_by_the_reaper(tmp_path, pg_url, proxy, monkeypatch):
    """The server stays away longer than the crash handler retries: the run stays `running`, the process
    still exits as it would, and leaves the crash in its crash file; the reaper ends the run once the server is
    reachable again, with the exception's message and stack as the run's last words."""
    monkeypatch.setenv("RUNTRACKER_CRASH_DIR", str(tmp_path / "crash"))
    code = READY.replace("import sys\n", "import sys\nimport runtracker.storage.postgres as pg\n"
                                         "pg.CRASH_RETRY_S = 0.3  # the test need not wait 5 s\n")
    proc = start(tmp_path, code + "raise ValueError('boom')\n", proxy.url(pg_url))
    proxy.reject()
    proxy.drop_all()
    go_on(proc)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and err.endswith("ValueError: boom\n")
    assert "runtracker: recording an uncaught exception failed" in err
    db = Db(pg_url)
    run_id = db.run()["id"]
    assert db.run(run_id)["outcome"] == "running"
    result = CliRunner().invoke(cli, ["reap", "--db", pg_url])
    assert result.exit_code == 0 and f"reaped run {run_id}" in result.output
    run = db.run(run_id)
    assert run["outcome"] == "failure" and run["reap_reason"] == "pid_gone"
    (crash,) = db.crash_rows(run_id)
    assert "its last words: uncaught_exception: ValueError: boom" in crash["error_message"]
    assert "Traceback (most recent call last)" in crash["error_stack"] and "ValueError: boom" in crash["error_stack"]
    assert list((tmp_path / "crash").iterdir()) == []  # attached, then removed


def test_a_forked_child_never_closes_the_parents_connection(tmp_path, pg_url):
    """A child forked mid-run tracks its own run and exits; the parent's connection to the server survives."""
    code = """
import os, sys
from runtracker import RunTracker
from runtracker.core.state import STATE
t = RunTracker("parent")
t.start_run()
backend = lambda: STATE.stores.get().read("SELECT pg_backend_pid() AS pid")[0]["pid"]
pid_before = backend()
child = os.fork()
if child == 0:
    c = RunTracker("child")
    c.start_run()
    c.end_run("success")
    sys.exit(0)
os.waitpid(child, 0)
t.end_run("success")
print(pid_before == backend())
"""
    result = run_app(tmp_path, code, pg_url)
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr
    assert sorted((r["pipeline"], r["outcome"]) for r in Db(pg_url).runs()) == [
        ("child", "success"), ("parent", "success")]


def test_an_unreachable_test_server_fails_the_postgresql_tests_with_a_clear_message():
    """Without the test server, PostgreSQL tests fail (never skip) and say which server and variable."""
    code = "import pg_schemas\npg_schemas.new_schema_url('x')\n"
    env = {**app_env(CLOSED_PORT_URL), pg_schemas.SERVER_ENV: CLOSED_PORT_URL}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                            cwd=Path(pg_schemas.__file__).parent)
    assert result.returncode == 1
    assert f"the PostgreSQL tests need a server at {CLOSED_PORT_URL}" in result.stderr
    assert pg_schemas.SERVER_ENV in result.stderr
