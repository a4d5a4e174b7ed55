"""The command line with hostile or wrong input: stored text cannot control the terminal (and --json gives it
back exactly), user errors are usage errors without a traceback, read-only commands create nothing, and a
database password never reaches a message."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import pg_schemas
from helpers import run_app
from runtracker import RunTracker
from runtracker.base.terminal import safe
from runtracker.cli import cli
from runtracker.monitor import loop

# What a pipeline may hand us, and what each would do to a terminal printed raw.
CLEAR_SCREEN = "\x1b[2J"
SET_TITLE = "\x1b]0;pwned\x07"
HOSTILE_PIPELINE = f"nikki{CLEAR_SCREEN}{SET_TITLE}\n99  forged  success"
HOSTILE_STEP = "sync\x08\x08\x08\x08wipe"
HOSTILE_MEMBER = "KNVB1\x1b[8m"
HOSTILE_MESSAGE = "not found\x07\r1  nikki  success  (a forged row)"
CONTROLS = ("\x1b", "\x07", "\x08", "\r", "\x9b")


@pytest.fixture(autouse=True)
def _monitor_never_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may reach the monitor's loop: a wrong value it let through would fail, not hang."""

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("runtracker monitor started its loop")

    monkeypatch.setattr(loop, "monitor", started)


def invoke(*args: str, **kwargs: object) -> Result:
    return CliRunner().invoke(cli, list(args), **kwargs)  # type: ignore[arg-type]


def _hostile_run(db_url: str) -> tuple[int, str]:
    """A failed run written through the public API: hostile names, error texts and a crash stack."""
    tracker = RunTracker(HOSTILE_PIPELINE, db=db_url)
    with pytest.raises(RuntimeError):
        with tracker.run() as run:
            step = tracker.start_step(HOSTILE_STEP)
            tracker.record_error(step_name=HOSTILE_STEP, step_id=step, member_identifier=HOSTILE_MEMBER,
                                 error_message=HOSTILE_MESSAGE)
            tracker.end_step(step, "partial", failed=1)
            raise RuntimeError(f"boom{SET_TITLE}")
    assert run.id is not None
    return run.id, tracker.pipeline


def _assert_no_controls(output: str) -> None:
    assert not [c for c in CONTROLS if c in output], repr(output)


# -- text from pipelines -------------------------------------------------------------------------------------
def test_runs_escapes_control_characters_and_its_json_gives_them_back_exactly(db_url):
    """runs shows a hostile pipeline name escaped, on one line (no ESC, BEL or CR reaches the terminal, no row
    is forged); runs --json gives the name back exactly as stored."""
    _, stored = _hostile_run(db_url)
    result = invoke("runs", "--db", db_url)
    assert result.exit_code == 0, result.output
    _assert_no_controls(result.output)
    lines = result.output.splitlines()
    assert len(lines) == 2  # the header and the one run: the newline in the name forged nothing
    assert "nikki\\x1b[2J\\x1b]0;pwned\\x07\\n99  forged  success" in lines[1]
    as_json = invoke("runs", "--db", db_url, "--json").output
    _assert_no_controls(as_json)
    (line,) = as_json.splitlines()
    assert json.loads(line)["pipeline"] == stored == HOSTILE_PIPELINE


def test_show_escapes_every_stored_text_and_its_json_gives_them_back_exactly(db_url):
    """show prints names, messages and the crash stack escaped (the stack keeps its own line breaks);
    show --json contains no raw control character and loads back to the stored texts."""
    run_id, _ = _hostile_run(db_url)
    result = invoke("show", "--db", db_url, str(run_id))
    assert result.exit_code == 0, result.output
    _assert_no_controls(result.output)
    out = result.output
    assert f"run {run_id}  nikki\\x1b[2J\\x1b]0;pwned\\x07\\n99  forged  success  FAILURE" in out
    assert "sync\\x08\\x08\\x08\\x08wipe" in out
    assert "[KNVB1\\x1b[8m]: not found\\x07\\r1  nikki  success  (a forged row)" in out
    assert "crash: RuntimeError: boom\\x1b]0;pwned\\x07" in out
    stack = [line.strip() for line in out.splitlines()]
    assert "Traceback (most recent call last):" in stack and "RuntimeError: boom\\x1b]0;pwned\\x07" in stack

    as_json = invoke("show", "--db", db_url, "--json", str(run_id)).output
    _assert_no_controls(as_json)
    shown = json.loads(as_json)
    assert shown["run"]["pipeline"] == HOSTILE_PIPELINE
    assert [s["step_name"] for s in shown["steps"]] == [HOSTILE_STEP]
    error, crash = shown["errors"]
    assert (error["member_identifier"], error["error_message"]) == (HOSTILE_MEMBER, HOSTILE_MESSAGE)
    assert crash["error_message"] == f"RuntimeError: boom{SET_TITLE}"
    assert crash["error_stack"].rstrip().endswith(f"RuntimeError: boom{SET_TITLE}")


@pytest.mark.subprocess
def test_reap_escapes_the_pipeline_name_of_a_run_it_reaps(tmp_path, db_url):
    """reap prints a reaped run's hostile name escaped; --json has it exactly."""
    app = f"""
        import os
        from runtracker import RunTracker
        RunTracker({HOSTILE_PIPELINE!r}).start_run()
        RunTracker({HOSTILE_PIPELINE!r}).start_run()
        os._exit(0)
    """
    assert run_app(tmp_path, app, db_url).returncode == 0
    result = invoke("reap", "--db", db_url)
    _assert_no_controls(result.output)
    lines = result.output.splitlines()
    assert len(lines) == 2 and all("(nikki\\x1b[2J\\x1b]0;pwned\\x07\\n99  forged  success)" in x for x in lines)
    assert run_app(tmp_path, app, db_url).returncode == 0
    reaped = [json.loads(line) for line in invoke("reap", "--db", db_url, "--json").output.splitlines()]
    assert [r["pipeline"] for r in reaped] == [HOSTILE_PIPELINE, HOSTILE_PIPELINE]


@pytest.mark.parametrize("text, multiline, shown", [
    pytest.param("nikki", False, "nikki", id="plain-text-as-it-is"),
    pytest.param("Ünïcode ✓ – 日本", False, "Ünïcode ✓ – 日本", id="printable-unicode-as-it-is"),
    pytest.param(CLEAR_SCREEN, False, "\\x1b[2J", id="csi-clear-screen"),
    pytest.param(SET_TITLE, False, "\\x1b]0;pwned\\x07", id="osc-window-title"),
    pytest.param("a\x08\x08b", False, "a\\x08\\x08b", id="backspaces"),
    pytest.param("a\rb\nc\td", False, "a\\rb\\nc\\td", id="one-line-escapes-line-breaks-and-tabs"),
    pytest.param("a\r\nb\n\tc\rd", True, "a\\r\nb\n\tc\\rd", id="multiline-keeps-newlines-and-tabs-not-cr"),
    pytest.param("\x00\x7f\x85\x9b", False, "\\x00\\x7f\\x85\\x9b", id="nul-del-and-c1-controls"),
    pytest.param("abc\u202edef\u2028", False, "abc\\u202edef\\u2028", id="bidi-override-and-line-separator"),
    pytest.param(42, False, "42", id="not-text"),
])
def test_safe_escapes_what_would_control_a_terminal(text, multiline, shown):
    """terminal.safe shows control characters escaped; printable text is unchanged."""
    assert safe(text, multiline=multiline) == shown


# -- usage errors ------------------------------------------------------------------------------------------
USAGE_ERRORS = [
    pytest.param(["show", "99999999999999999999"], "RUN_ID", id="show-id-beyond-64-bits"),
    pytest.param(["show", "0"], "RUN_ID", id="show-id-zero"),
    pytest.param(["show", "--", "-5"], "RUN_ID", id="show-id-negative"),
    pytest.param(["runs", "--limit", "-1"], "--limit", id="runs-negative-limit"),
    pytest.param(["runs", "--limit", "0"], "--limit", id="runs-zero-limit"),
    pytest.param(["runs", "--limit", "10000000000"], "--limit", id="runs-huge-limit"),
    pytest.param(["monitor", "--interval", "1e12"], "--interval", id="monitor-interval-beyond-a-day"),
    pytest.param(["monitor", "--interval", "inf"], "--interval", id="monitor-interval-infinity"),
    pytest.param(["monitor", "--interval", "0.01"], "--interval", id="monitor-interval-a-busy-loop"),
    pytest.param(["reap", "--heartbeat-timeout", "nan"], "--heartbeat-timeout", id="reap-timeout-nan"),
    pytest.param(["reap", "--heartbeat-timeout", "0"], "--heartbeat-timeout", id="reap-timeout-zero"),
    pytest.param(["reap", "--heartbeat-timeout", "inf"], "--heartbeat-timeout", id="reap-timeout-infinity"),
    pytest.param(["monitor", "--heartbeat-timeout", "1e10"], "--heartbeat-timeout", id="monitor-timeout-huge"),
    pytest.param(["exec", "-p", "x", "--timeout", "inf", "--", "true"], "--timeout", id="exec-timeout-infinity"),
    pytest.param(["exec", "-p", "x", "--timeout", "nan", "--", "true"], "not a duration: 'nan'",
                 id="exec-timeout-nan-is-not-called-negative"),
    pytest.param(["exec", "-p", "x", "--timeout", "31d", "--", "true"], "at most 30d", id="exec-timeout-31-days"),
    pytest.param(["exec", "-p", "x", "--kill-after", "2d", "--", "true"], "at most 1d", id="exec-kill-after-2-days"),
    pytest.param(["exec", "-p", "x", "--tail", "9" * 400 + "k", "--", "true"], "--tail", id="exec-tail-infinite"),
]


@pytest.mark.parametrize("args, mentions", USAGE_ERRORS)
def test_user_errors_are_usage_errors_without_a_traceback(args, mentions, tmp_path, monkeypatch):
    """A wrong number is exit 2 with a message naming the option, before anything is opened or run."""
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "dashboard.sqlite")
    result = invoke(args[0], "--db", db, *args[1:])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and mentions in result.output
    assert list(tmp_path.iterdir()) == []


UNKNOWN_SCHEMES = ["mysql://u:secret@db.example/runs", "postgresq://u:secret@db.example/runs",
                   "file:///tmp/runs.sqlite", "https://db.example/runs"]
COMMANDS_WITH_DB = [["runs"], ["show", "1"], ["reap"], ["monitor"], ["selftest"], ["exec", "-p", "x", "--", "true"]]


@pytest.mark.parametrize("db", UNKNOWN_SCHEMES)
@pytest.mark.parametrize("command", COMMANDS_WITH_DB, ids=lambda command: command[0])
def test_an_unknown_database_scheme_is_a_usage_error(command, db, tmp_path, monkeypatch):
    """--db with a URL we do not support is exit 2 listing what is accepted; no stray file, no password."""
    monkeypatch.chdir(tmp_path)
    result = invoke(command[0], "--db", db, *command[1:])
    assert result.exit_code == 2, result.output
    assert "unknown database URL scheme" in result.output and "postgresql://" in result.output
    assert "secret" not in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--from", "--to"])
def test_migrate_refuses_an_unknown_scheme_on_either_side(option, tmp_path, monkeypatch):
    """migrate --from / --to with an unknown scheme is a usage error too."""
    monkeypatch.chdir(tmp_path)
    other = "--to" if option == "--from" else "--from"
    result = invoke("migrate", option, "mysql://u:secret@db/runs", other, str(tmp_path / "x.sqlite"))
    assert result.exit_code == 2 and "unknown database URL scheme" in result.output
    assert "secret" not in result.output and list(tmp_path.iterdir()) == []


def test_an_unknown_scheme_in_the_environment_says_where_it_came_from(tmp_path, monkeypatch):
    """$RUNTRACKER_DB=mysql://... is the same usage error, naming the environment variable."""
    monkeypatch.chdir(tmp_path)
    result = invoke("runs", env={"RUNTRACKER_DB": "mysql://u:secret@db/runs"})
    assert result.exit_code == 2 and "(from $RUNTRACKER_DB)" in result.output
    assert "secret" not in result.output and list(tmp_path.iterdir()) == []


# -- read-only commands create nothing ----------------------------------------------------------------------
@pytest.mark.parametrize("command", [["runs"], ["runs", "--json"], ["show", "1"], ["show", "--json", "1"]],
                         ids=" ".join)
def test_runs_and_show_on_a_missing_path_create_neither_file_nor_directory(command, tmp_path, monkeypatch):
    """A path with no database: exit 1 saying so; no file, no directory, also for $RUNTRACKER_DB and the default."""
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nowhere" / "dashboard.sqlite"
    for extra, env in ((["--db", str(missing)], {}), ([], {"RUNTRACKER_DB": str(missing)}),
                       ([], {"RUNTRACKER_DB": ""})):
        result = invoke(command[0], *extra, *command[1:], env=env)
        assert result.exit_code == 1, result.output
        assert "there is no database at" in result.output and "nothing was created" in result.output
        assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def _tables(db_url: str) -> list[str]:
    """The tables in the test database: a SQLite file's, or those of the test's PostgreSQL schema."""
    if db_url.startswith("sqlite:///"):
        path = db_url[len("sqlite:///"):]
        if not os.path.exists(path):
            return []
        with sqlite3.connect(path) as conn:
            return [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    rows = pg_schemas.admin().execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                                      (pg_schemas.schema_of(db_url),)).fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize("command", [["runs"], ["show", "1"]], ids=" ".join)
def test_runs_and_show_on_an_empty_database_create_no_tables(command, db_url):
    """An empty PostgreSQL schema (or no SQLite file): exit 1 saying so, and still no tables afterwards."""
    result = invoke(command[0], "--db", db_url, *command[1:])
    assert result.exit_code == 1 and "nothing was created" in result.output, result.output
    assert _tables(db_url) == []


def test_runs_on_an_empty_sqlite_file_leaves_it_empty(tmp_path):
    """A zero-byte file is no database: it stays zero bytes, with no journal beside it."""
    path = tmp_path / "dashboard.sqlite"
    path.touch()
    result = invoke("runs", "--db", str(path))
    assert result.exit_code == 1 and "no runtracker tables" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["dashboard.sqlite"] and path.stat().st_size == 0


# -- passwords ---------------------------------------------------------------------------------------------
UNREACHABLE = ["postgresql://u:secret@127.0.0.1:1/x", "postgresql://:secret@127.0.0.1:1/x",
               "postgresql://u@127.0.0.1:1/x?password=secret"]


@pytest.mark.parametrize("db", UNREACHABLE, ids=["user-and-password", "password-only", "password-parameter"])
@pytest.mark.parametrize("command", [["runs"], ["show", "1"], ["reap"], ["monitor"]], ids=lambda c: c[0])
def test_a_database_that_cannot_be_opened_is_a_clean_error_without_the_password(command, db):
    """An unreachable server: `Error: cannot open the database ...` (exit 1), the password masked."""
    result = invoke(command[0], "--db", db, *command[1:])
    assert result.exit_code == 1, result.output
    assert "cannot open the database postgresql://" in result.output and "***" in result.output
    assert "secret" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("db", UNREACHABLE, ids=["user-and-password", "password-only", "password-parameter"])
def test_migrate_from_an_unreachable_database_never_shows_the_password(db, tmp_path):
    """migrate's error for an unreachable source masks its password too."""
    result = invoke("migrate", "--from", db, "--to", str(tmp_path / "to.sqlite"))
    assert result.exit_code == 1 and "secret" not in result.output and "Traceback" not in result.output


def test_reap_error_from_the_environment_never_shows_the_password(monkeypatch):
    """The password of $RUNTRACKER_DB is masked as well."""
    result = invoke("reap", env={"RUNTRACKER_DB": "postgresql://u:secret@127.0.0.1:1/x"})
    assert result.exit_code == 1 and "secret" not in result.output and "u:***@" in result.output


def test_shown_database_path_is_safe_for_a_terminal(tmp_path: Path):
    """A missing path with an escape sequence in its name is not printed raw."""
    result = invoke("runs", "--db", str(tmp_path / f"x{CLEAR_SCREEN}.sqlite"))
    assert result.exit_code == 1
    _assert_no_controls(result.output)
