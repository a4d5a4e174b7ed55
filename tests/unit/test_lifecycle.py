"""The pure parts of ending a run (runtracker.core.lifecycle): the exit status of sys.exit, how an exception is
written down, the crash row, the last moment a lost owner was known alive, and which step an error goes under."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runtracker.base import sanitize
from runtracker.core.ending import exit_status, format_exception
from runtracker.core.lifecycle import crash_row, last_sign_of_life, record_errors
from runtracker.storage import Runs, open_store

TRUNCATED = "…[truncated]"

@pytest.mark.parametrize("code, status", [
    pytest.param(None, 0, id="none-is-0"),
    pytest.param(0, 0, id="zero"),
    pytest.param(3, 3, id="an-int"),
    pytest.param(255, 255, id="255"),
    pytest.param(-1, -1, id="negative-kept-as-given"),
    pytest.param("bye", 1, id="a-message-is-1"),
    pytest.param(1.5, 1, id="a-float-is-printed-and-1"),
    pytest.param(True, 1, id="true-is-1"),
    pytest.param(False, 0, id="false-is-0"),
])
def test_exit_status_is_the_int_sys_exit_gives_the_process(code, status):
    """sys.exit(None) is 0, sys.exit(n) is n, anything else (a message) is 1 — always a plain int."""
    result = exit_status(code)
    assert (type(result), result) == (int, status)


class SyncError(Exception):
    pass


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def _raised(make: Callable[[], BaseException]) -> BaseException:
    try:
        raise make()
    except BaseException as exc:  # the point is to keep it
        return exc


def _chained() -> BaseException:
    try:
        try:
            raise KeyError("KNVB1004")
        except KeyError as inner:
            raise SyncError("member lookup failed") from inner
    except SyncError as exc:
        return exc


@pytest.mark.parametrize("make, message, in_stack", [
    pytest.param(lambda: _raised(lambda: ValueError("boom")), "ValueError: boom",
                 ["Traceback (most recent call last)", "in _raised", "ValueError: boom"], id="raised"),
    pytest.param(lambda: ValueError("never raised"), "ValueError: never raised", ["ValueError: never raised"],
                 id="never-raised-has-no-frames"),
    pytest.param(lambda: _raised(lambda: ValueError()), "ValueError", ["ValueError"], id="no-message-just-the-type"),
    pytest.param(lambda: _raised(lambda: KeyError("KNVB1004")), "KeyError: 'KNVB1004'", ["KeyError: 'KNVB1004'"],
                 id="key-error-quotes-its-key"),
    pytest.param(lambda: _raised(lambda: SyncError("sync failed")), "SyncError: sync failed", ["SyncError"],
                 id="own-exception-class-by-its-short-name"),
    pytest.param(_chained, "SyncError: member lookup failed",
                 ["KeyError: 'KNVB1004'", "direct cause of the following exception", "SyncError"],
                 id="the-stack-shows-the-cause"),
    pytest.param(lambda: _raised(lambda: KeyboardInterrupt()), "KeyboardInterrupt", ["KeyboardInterrupt"],
                 id="keyboard-interrupt"),
])
def test_format_exception_gives_the_crash_rows_message_and_stack(make, message, in_stack):
    """The message is `Type: text` (the type alone when the text is empty); the stack is the full traceback."""
    got_message, stack = format_exception(make())
    assert got_message == message
    assert stack is not None
    for part in in_stack:
        assert part in stack


def test_format_exception_of_an_exception_whose_str_raises_still_names_its_type():
    """A broken __str__ costs the text, not the crash row: the message still starts with the type's name."""
    message, stack = format_exception(_raised(Unprintable))
    assert message.startswith("Unprintable")
    assert stack is not None and "Unprintable" in stack


def test_format_exception_of_none_is_empty():
    """No exception: an empty message and no stack."""
    assert format_exception(None) == ("", None)


AT = "2026-11-26T19:27:33.598Z"


@pytest.mark.parametrize("message, stack, expected_message, expected_stack", [
    pytest.param("ValueError: boom", "Traceback ...", "ValueError: boom", "Traceback ...", id="as-given"),
    pytest.param("", None, "crash", None, id="empty-message-says-crash"),
    pytest.param(None, None, "crash", None, id="no-message-says-crash"),
    pytest.param("a\x00b", "s\x00", "a\ufffdb", "s\ufffd", id="nul-replaced"),
    pytest.param("m" * 5000, "s" * 10000, "m" * (sanitize.MESSAGE_LIMIT - len(TRUNCATED)) + TRUNCATED,
                 "s" * (sanitize.STACK_LIMIT - len(TRUNCATED)) + TRUNCATED, id="cut-to-the-limits"),
])
def test_crash_row_is_a_clean_error_row_named_crash(message, stack, expected_message, expected_stack):
    """The crash row: step_name `crash`, no member, the message and stack cleaned and cut to their limits."""
    assert crash_row(7, 12, "rondo", message, stack, AT) == (
        7, 12, "rondo", "crash", None, expected_message, expected_stack, AT)


def test_crash_row_without_a_step_or_club():
    """A crash outside any step, on a run without a club, leaves those columns NULL."""
    assert crash_row(7, None, None, "boom", None, AT)[:3] == (7, None, None)


START = "2026-01-01T00:00:00.000Z"


@pytest.mark.parametrize("heartbeat_at, activity, expected", [
    pytest.param(None, None, START, id="only-the-start"),
    pytest.param("2026-01-01T00:00:10.000Z", None, "2026-01-01T00:00:10.000Z", id="heartbeat"),
    pytest.param(None, "2026-01-01T00:00:12.000Z", "2026-01-01T00:00:12.000Z", id="activity"),
    pytest.param("2026-01-01T00:00:10.000Z", "2026-01-01T00:00:14.500Z", "2026-01-01T00:00:14.500Z",
                 id="activity-after-the-heartbeat"),
    pytest.param("2026-01-01T00:00:20.000Z", "2026-01-01T00:00:14.500Z", "2026-01-01T00:00:20.000Z",
                 id="heartbeat-after-the-activity"),
    pytest.param("2025-12-31T23:59:00.000Z", "2025-12-31T23:59:30.000Z", START, id="both-before-the-start"),
    pytest.param("garbage", None, START, id="unreadable-heartbeat-ignored"),
    pytest.param("garbage", "2026-01-01T00:00:12.000Z", "2026-01-01T00:00:12.000Z",
                 id="unreadable-heartbeat-readable-activity"),
    pytest.param("2026-01-01T01:00:10.000+01:00", None, "2026-01-01T01:00:10.000+01:00",
                 id="heartbeat-written-with-an-offset"),
])
def test_last_sign_of_life_is_the_latest_of_start_heartbeat_and_activity(heartbeat_at, activity, expected):
    """A lost run ends at the last moment its owner is known alive: never before its start."""
    assert last_sign_of_life({"started_at": START, "heartbeat_at": heartbeat_at}, activity) == expected


def test_last_sign_of_life_of_a_row_without_a_heartbeat_column():
    """A row from before heartbeats existed (no heartbeat_at key) ends at its start or its activity."""
    assert last_sign_of_life({"started_at": START}, None) == START


def test_an_error_goes_under_the_step_named_else_by_id_else_in_progress_else_the_run(tmp_path):
    """The one step rule (lifecycle.record_errors): the name given wins, then the step given by id, then the step
    in progress (read once, for every error that needs it), then `(run)` when no step is in progress."""
    store = open_store(f"sqlite:///{tmp_path / 'dashboard.sqlite'}")
    runs, asked = Runs(store), []
    run_id = runs.insert_run(pipeline="nikki", club_slug=None, started_at=START, hostname=None, pid=None,
                             process_started_at=None, retention_cutoff=None)
    assert run_id is not None

    def in_progress(name):
        return lambda: asked.append(name) or name

    def recorded():
        return [(row["step_name"], row["run_step_id"], row["member_identifier"], row["error_message"])
                for row in runs.list_errors(run_id)]

    try:
        errors = [("named", 7, None, "a", None), (None, 7, None, "b", None), (None, None, None, "c", None),
                  (None, None, None, "d", None)]
        assert record_errors(store, run_id, "rondo", errors, {7: "download"}, in_progress("sync")) == 4
        assert recorded() == [("named", 7, None, "a"), ("download", 7, None, "b"), ("sync", None, None, "c"),
                              ("sync", None, None, "d")]
        assert asked == ["sync"]
        record_errors(store, run_id, "rondo", [(None, None, "KNVB1004", None, None)], {}, in_progress(None))
        assert recorded()[4:] == [("(run)", None, "KNVB1004", "(no message)")]
        record_errors(store, run_id, "rondo", [("named", None, None, "x", None)], {}, in_progress("never"))
        assert "never" not in asked and recorded()[5:] == [("named", None, None, "x")]
    finally:
        store.close()
