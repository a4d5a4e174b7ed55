"""The log ring (runtracker.core.logring): the process's last log records, kept cheaply and shown on crash rows;
`record_log_errors`; the `log_lines` and `record_log_errors` settings."""

from __future__ import annotations

import gc
import logging
import os
import sys

import pytest

from helpers import Db
from runtracker import RunTracker
from runtracker.core import logring
from runtracker.core.state import STATE
from runtracker.settings import values as config
from runtracker.storage import Runs


@pytest.fixture
def log() -> logging.Logger:
    """A logger that lets DEBUG through on its own (the root logger's level stays as it is), with no handler."""
    logger = logging.getLogger("nikki.test")
    previous = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # the test's records stay out of pytest's capture and any handler
    yield logger
    logger.setLevel(previous[0])
    logger.propagate = previous[1]


def texts(section: str | None) -> list[str]:
    """The section's entries without timestamps (an indented line continues the entry before it)."""
    assert section is not None
    head, *lines = section.split("\n")
    assert head.startswith(logring.HEADER)
    entries: list[str] = []
    for line in lines:
        if line.startswith("    "):
            entries[-1] += "\n" + line
        else:
            entries.append(line.split(" ", 1)[1])
    return entries


def made(level: int, msg: str, *args: object, exc_info: object = None) -> None:
    """A record made as a logger makes it (through the record factory), but handled by no handler: pytest's
    capture, which would format it at log time and keep it, never sees it."""
    logging.getLogger("nikki.test").makeRecord("nikki.test", level, __file__, 1, msg, args, exc_info)


def test_the_ring_keeps_the_last_records_at_info_and_above_in_order(log):
    """Only INFO and above enter the ring, the last `size` of them, oldest first."""
    STATE.log_ring.install(3)
    log.debug("not kept")
    for i in range(5):
        log.info("line %d", i)
    log.warning("the last")
    assert texts(STATE.log_ring.lines(0.0, 50)) == ["INFO nikki.test: line 3", "INFO nikki.test: line 4",
                                                     "WARNING nikki.test: the last"]
    assert texts(STATE.log_ring.lines(0.0, 1)) == ["WARNING nikki.test: the last"]


def test_installing_again_wraps_the_factory_once_and_adds_no_handler(log):
    """A second install grows the ring but never wraps the factory twice; no logger gets a handler."""
    handlers = list(logging.getLogger().handlers)
    STATE.log_ring.install(2)
    factory = logging.getLogRecordFactory()
    STATE.log_ring.install(5)
    assert logging.getLogRecordFactory() is factory
    log.info("once")
    assert texts(STATE.log_ring.lines(0.0, 50)) == ["INFO nikki.test: once"]
    assert STATE.log_ring.records.maxlen == 5
    assert logging.getLogger().handlers == handlers


def test_only_records_since_the_moment_given_are_shown(log):
    """A crash row gets the records created since its run started, not the ones before."""
    STATE.log_ring.install(10)
    log.info("before")
    since = max(record.created for record in STATE.log_ring.records) + 1e-6
    record = logging.LogRecord("nikki.test", logging.INFO, __file__, 1, "after", None, None)
    record.created = since + 1
    STATE.log_ring.records.append(record)
    assert texts(STATE.log_ring.lines(since, 50)) == ["INFO nikki.test: after"]
    assert STATE.log_ring.lines(since + 2, 50) is None


def test_a_message_is_formatted_at_crash_time_unless_a_handler_formatted_it_when_logged(log):
    """Unformatted records are formatted when the crash is recorded (a changed argument shows its later value);
    a record a handler already formatted keeps that text."""
    STATE.log_ring.install(10)
    members = ["KNVB1"]
    made(logging.INFO, "members %s", members)
    made(logging.INFO, "formatted %s", members)
    logging.Formatter().format(STATE.log_ring.records[-1])  # as a handler of the process would, when logged
    members.append("KNVB2")
    assert texts(STATE.log_ring.lines(0.0, 50)) == ["INFO nikki.test: members ['KNVB1', 'KNVB2']",
                                                     "INFO nikki.test: formatted ['KNVB1']"]


def test_arguments_that_do_not_fit_are_shown_with_the_format_string(log):
    """A record whose arguments do not fit its format is shown as the format string, saying so."""
    STATE.log_ring.install(10)
    made(logging.INFO, "two %s %s", "one")
    assert texts(STATE.log_ring.lines(0.0, 50)) == [
        "INFO nikki.test: two %s %s (its arguments could not be formatted: TypeError)"]


def test_a_logged_exception_keeps_no_traceback_alive(log):
    """A record with exception info is copied without it: the frames and their locals are not kept alive."""
    STATE.log_ring.install(10)

    class Big:
        pass

    def fail() -> None:
        big = Big()  # noqa: F841 - held by the frame only
        raise KeyError("member")

    try:
        fail()
    except KeyError:
        made(logging.ERROR, "sync failed", exc_info=sys.exc_info())
    alive = [o for o in gc.get_objects() if isinstance(o, Big)]
    assert alive == []
    assert texts(STATE.log_ring.lines(0.0, 50)) == ["ERROR nikki.test: sync failed [KeyError: 'member']"]


def test_long_lines_and_many_lines_are_capped(log):
    """Each line is cut at LINE_LIMIT characters; the section at TEXT_LIMIT, leaving out the oldest lines."""
    STATE.log_ring.install(1000)
    for i in range(200):
        log.info("%03d %s", i, "y" * 1000)
    section = STATE.log_ring.lines(0.0, 1000)
    assert section is not None and len(section) <= logring.TEXT_LIMIT
    lines = texts(section)
    assert all(len(line) < logring.LINE_LIMIT for line in lines)
    assert lines[-1].startswith("INFO nikki.test: 199 yyy") and lines[-1].endswith("…")
    assert f"{200 - len(lines)} earlier left out" in section.split("\n")[0]
    numbers = [int(line.split(": ")[1][:3]) for line in lines]
    assert numbers == list(range(200 - len(lines), 200))


def test_continuation_lines_are_indented_and_other_threads_named(log):
    """A message of several lines stays one entry (continuations indented); a thread other than main is named."""
    import threading

    STATE.log_ring.install(10)
    log.info("first\nsecond")
    worker = threading.Thread(target=lambda: log.info("from the worker"), name="syncer")
    worker.start()
    worker.join()
    assert texts(STATE.log_ring.lines(0.0, 50)) == ["INFO nikki.test: first\n    second",
                                                     "INFO nikki.test [syncer]: from the worker"]


def test_make_log_record_still_works_with_the_ring_installed():
    """logging.makeLogRecord (a record with no level, as socket handlers make) goes through untouched."""
    STATE.log_ring.install(10)
    record = logging.makeLogRecord({"msg": "from a socket", "levelno": logging.ERROR})
    assert record.getMessage() == "from a socket"


def test_uninstall_puts_back_a_users_factory_which_the_ring_called(log):
    """The ring wraps the factory in place and calls it for every record; uninstall puts it back."""
    original = logging.getLogRecordFactory()
    made = []

    def users_factory(*args, **kwargs):
        record = original(*args, **kwargs)
        made.append(record.getMessage())
        return record

    logging.setLogRecordFactory(users_factory)
    try:
        STATE.log_ring.install(10)
        log.info("through both")
        assert made == ["through both"]
        assert texts(STATE.log_ring.lines(0.0, 50)) == ["INFO nikki.test: through both"]
        STATE.log_ring.uninstall()
        assert logging.getLogRecordFactory() is users_factory
    finally:
        logging.setLogRecordFactory(original)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_with_an_empty_ring_and_the_factory_once(log):
    """After fork the child's ring is empty and its factory is the parent's one (never installed twice)."""
    STATE.log_ring.install(10)
    log.info("the parent's")
    factory = logging.getLogRecordFactory()
    pid = os.fork()
    if pid == 0:  # the child: report by exit status only
        ok = len(STATE.log_ring.records) == 0
        STATE.log_ring.install(10)
        ok = ok and logging.getLogRecordFactory() is factory
        log.info("the child's")
        ok = ok and texts(STATE.log_ring.lines(0.0, 50)) == ["INFO nikki.test: the child's"]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert texts(STATE.log_ring.lines(0.0, 50)) == ["INFO nikki.test: the parent's"]


def test_split_stack_takes_apart_what_join_stack_put_together():
    """A crash row's error_stack: traceback and log lines section, either of them alone, or neither."""
    section = f"{logring.HEADER} (the last 1 of this run, oldest first) ---\n2026 INFO x: y"
    assert logring.split_stack(logring.join_stack("Traceback\nValueError: v\n", section)) == (
        "Traceback\nValueError: v", section)
    assert logring.split_stack(logring.join_stack(None, section)) == (None, section)
    assert logring.split_stack(logring.join_stack("Traceback", None)) == ("Traceback", None)
    assert logring.split_stack(None) == (None, None)


# -- through the tracker ------------------------------------------------------------------------------------
def test_a_with_block_that_raises_leaves_its_log_lines_on_the_crash_row(sqlite_url, log):
    """`with tracker.run()` ending by an exception: the crash row has the traceback, then the lines logged since
    the run started (not those of the run before)."""
    tracker = RunTracker("nikki", db=sqlite_url)
    with tracker.run():
        log.info("the first run")
    with pytest.raises(RuntimeError), tracker.run():
        log.info("fetching %d members", 12)
        log.warning("slow API")
        raise RuntimeError("API down")
    db = Db(sqlite_url)
    assert db.crash_rows(db.runs()[0]["id"]) == []
    (crash,) = db.crash_rows(db.run()["id"])
    stack, section = logring.split_stack(crash["error_stack"])
    assert "RuntimeError: API down" in stack
    assert texts(section) == ["INFO nikki.test: fetching 12 members", "WARNING nikki.test: slow API"]


def test_log_lines_zero_installs_nothing(sqlite_url, log):
    """log_lines=0 (and no record_log_errors): the log record factory is not replaced; crash rows have no lines."""
    factory = logging.getLogRecordFactory()
    tracker = RunTracker("nikki", db=sqlite_url, log_lines=0)
    with pytest.raises(RuntimeError), tracker.run():
        log.info("not kept")
        raise RuntimeError("API down")
    assert logging.getLogRecordFactory() is factory
    db = Db(sqlite_url)
    (crash,) = db.crash_rows(db.run()["id"])
    assert logring.HEADER not in crash["error_stack"]


def test_record_log_errors_makes_an_error_row_under_the_step_in_progress(sqlite_url, log):
    """record_log_errors=True: an ERROR record is an error row of the step in progress, with the exception's
    stack; WARNING is not; runtracker's own errors never are; the run ends partial."""
    with RunTracker("nikki", db=sqlite_url, record_log_errors=True).run() as run:
        with run.step("nikki-sync"):
            log.warning("just a warning")
            try:
                {}["KNVB1"]
            except KeyError:
                log.exception("member %s failed", "KNVB1")
            logging.getLogger("runtracker").error("runtracker: something of ours")
        log.error("between steps")
    db = Db(sqlite_url)
    row = db.run()
    errors = db.errors(row["id"])
    assert [(e["step_name"], e["error_message"]) for e in errors] == [("nikki-sync", "member KNVB1 failed"),
                                                                      ("(run)", "between steps")]
    assert "KeyError: 'KNVB1'" in errors[0]["error_stack"] and errors[1]["error_stack"] is None
    assert row["outcome"] == "partial"


def test_record_log_errors_is_off_by_default(sqlite_url, log):
    """Without record_log_errors an ERROR record is no error row, and the run ends success."""
    with RunTracker("nikki", db=sqlite_url).run():
        log.error("only logged")
    db = Db(sqlite_url)
    assert db.errors(db.run()["id"]) == [] and db.run()["outcome"] == "success"


def test_an_error_record_is_written_by_the_runs_next_call_not_inside_the_logging_call(sqlite_url, log,
                                                                                      monkeypatch):
    """The row of an ERROR record is written by the run's next tracker call (or its end), never from inside the
    logging call, which may come from a signal handler interrupting one of our own writes."""
    tracker = RunTracker("nikki", db=sqlite_url, record_log_errors=True)
    tracker.start_run()
    writes: list[int] = []
    real = Runs.insert_errors
    monkeypatch.setattr(Runs, "insert_errors", lambda runs, rows: (writes.append(len(rows)), real(runs, rows))[1])
    log.error("first")
    log.error("second")
    assert writes == []
    step = tracker.start_step("nikki-sync")
    assert writes == [2]
    log.error("third")
    tracker.end_step(step, "success")
    assert writes == [2, 1]
    log.error("at the end")
    assert tracker.end_run("success")  # written with the end, in its transaction
    db = Db(sqlite_url)
    assert [e["error_message"] for e in db.errors(db.run()["id"])] == ["first", "second", "third", "at the end"]


@pytest.mark.swallows
def test_a_failing_log_error_write_is_logged_once_and_the_rows_come_with_the_end(sqlite_url, log, swallowed,
                                                                                 monkeypatch, caplog):
    """The rows of ERROR records cannot be written: runtracker says so once (on its own logger, whose records
    never become rows), keeps them, and writes them with the run's end; the pipeline's calls go on."""
    tracker = RunTracker("nikki", db=sqlite_url, record_log_errors=True)
    tracker.start_run()

    def broken(runs, rows):
        raise OSError("disk full")

    monkeypatch.setattr(Runs, "insert_errors", broken)
    for i in range(3):
        log.error("sync failed %d", i)
        assert tracker.start_step(f"step-{i}") is not None
    assert [type(e).__name__ for e in swallowed] == ["OSError"] * 3
    ours = [r.getMessage() for r in caplog.records if r.name == "runtracker" and r.levelno == logging.ERROR]
    assert len(ours) == 1 and "recording ERROR log records" in ours[0] and "disk full" in ours[0]
    monkeypatch.undo()
    assert tracker.end_run("failure")
    db = Db(sqlite_url)
    errors = db.errors(db.run()["id"])
    assert [(e["step_name"], e["error_message"]) for e in errors] == [
        ("(run)", "sync failed 0"), ("step-0", "sync failed 1"), ("step-1", "sync failed 2")]


def test_an_error_record_goes_to_the_run_of_its_own_thread(sqlite_url, log):
    """With two runs open in two threads, an ERROR record becomes a row of the logging thread's run only."""
    import threading

    main = RunTracker("nikki", db=sqlite_url, record_log_errors=True)
    main.start_run()
    done = threading.Event()
    go_on = threading.Event()

    def work():
        worker = RunTracker("worker", db=sqlite_url, record_log_errors=True)
        worker.start_run()
        log.error("the worker's")
        done.set()
        go_on.wait(30)
        worker.end_run("failure")

    thread = threading.Thread(target=work)
    thread.start()
    done.wait(30)
    log.error("the main thread's")
    go_on.set()
    thread.join()
    main.end_run("failure")
    db = Db(sqlite_url)
    by_pipeline = {r["pipeline"]: [e["error_message"] for e in db.errors(r["id"])] for r in db.runs()}
    assert by_pipeline == {"nikki": ["the main thread's"], "worker": ["the worker's"]}


# -- the settings ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "env", "expected"), [
    (None, None, 50), (10, None, 10), (0, None, 0), (None, "7", 7), (5, "7", 5), (None, " ", 50),
])
def test_log_lines_from_argument_then_environment_then_default(value, env, expected, monkeypatch):
    """log_lines=, else $RUNTRACKER_LOG_LINES, else 50."""
    monkeypatch.delenv("RUNTRACKER_LOG_LINES", raising=False)
    if env is not None:
        monkeypatch.setenv("RUNTRACKER_LOG_LINES", env)
    assert config.log_lines(value) == expected


@pytest.mark.parametrize(("value", "env", "shown"), [
    (-1, None, "log_lines=-1"), (1001, None, "log_lines=1001"), (2.5, None, "log_lines=2.5"),
    (True, None, "log_lines=True"), (None, "lots", "RUNTRACKER_LOG_LINES='lots'"),
])
def test_a_wrong_log_lines_is_the_default_with_one_warning(value, env, shown, monkeypatch, caplog):
    """A wrong number of lines is 50, with one warning naming where it came from."""
    monkeypatch.delenv("RUNTRACKER_LOG_LINES", raising=False)
    if env is not None:
        monkeypatch.setenv("RUNTRACKER_LOG_LINES", env)
    caplog.set_level(logging.WARNING, logger="runtracker")
    assert config.log_lines(value) == 50
    assert config.log_lines(value) == 50
    warnings = [r.getMessage() for r in caplog.records if r.name == "runtracker"]
    assert len(warnings) == 1 and shown in warnings[0] and "using 50" in warnings[0]


@pytest.mark.parametrize(("value", "env", "expected"), [
    (None, None, False), (True, None, True), (False, "1", False), (None, "yes", True), (None, "OFF", False),
    (None, "true", True),
])
def test_record_log_errors_from_argument_then_environment_then_off(value, env, expected, monkeypatch):
    """record_log_errors=, else $RUNTRACKER_RECORD_LOG_ERRORS, else off."""
    monkeypatch.delenv("RUNTRACKER_RECORD_LOG_ERRORS", raising=False)
    if env is not None:
        monkeypatch.setenv("RUNTRACKER_RECORD_LOG_ERRORS", env)
    assert config.record_log_errors(value) is expected


@pytest.mark.parametrize(("value", "env"), [("maybe", None), (1, None), (None, "2")])
def test_a_wrong_record_log_errors_is_off_with_one_warning(value, env, monkeypatch, caplog):
    """Anything but True/False or an on/off word is off, with a warning."""
    monkeypatch.delenv("RUNTRACKER_RECORD_LOG_ERRORS", raising=False)
    if env is not None:
        monkeypatch.setenv("RUNTRACKER_RECORD_LOG_ERRORS", env)
    caplog.set_level(logging.WARNING, logger="runtracker")
    assert config.record_log_errors(value) is False
    warnings = [r.getMessage() for r in caplog.records if r.name == "runtracker"]
    assert len(warnings) == 1 and "using off" in warnings[0]


def test_an_error_record_row_is_redacted(sqlite_url, log):
    """An ERROR record's row goes through sanitize like every stored text: no password in it."""
    with RunTracker("nikki", db=sqlite_url, record_log_errors=True).run():
        log.error("login failed for https://sync:pw-Secret-1@api.example.org/v1")
    db = Db(sqlite_url)
    (error,) = db.errors(db.run()["id"])
    assert error["error_message"] == "login failed for https://sync:***@api.example.org/v1"


def test_log_capture_collects_debug_lines_of_its_sends_only_and_adds_none_to_the_process_s_log(caplog):
    """The capture lowers the logger's level to see debug records, collects them (and those of a worker thread
    run in a copy of the sender's context, as Apprise 2 runs a send), and lets on to handlers only what the
    logger's level let on before."""
    import contextvars
    import logging
    import threading

    from runtracker.core.logring import LogCapture

    caplog.set_level(logging.WARNING)  # the process's log: warnings and worse
    logger = logging.getLogger("runtracker-test-capture")
    capture = LogCapture()
    capture.install(logger.name)
    capture.install(logger.name)  # once per logger
    assert logger.filters == [capture] and logger.level == logging.DEBUG
    logger.debug("before: nobody asked")
    capture.start()
    logger.debug("Socket Exception: [Errno 111] Connection refused")
    worker = threading.Thread(target=contextvars.copy_context().run,
                              args=(logger.warning, "from the worker: %s", "error=500"))
    worker.start()
    worker.join()
    other = threading.Thread(target=logger.warning, args=("another thread, not this send's",))
    other.start()
    other.join()
    lines = capture.stop()
    logger.debug("after: nobody asks")
    assert lines[:2] == [(logging.DEBUG, "Socket Exception: [Errno 111] Connection refused"),
                         (logging.WARNING, "from the worker: error=500")]
    assert "another thread, not this send's" not in [text for _, text in lines]
    shown = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert "from the worker: error=500" in shown and not any("Socket" in m or "nobody" in m for m in shown)
