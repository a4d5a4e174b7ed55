"""How a run ended, as its ender knows it (`Ending`), and the crash kinds and exception texts it carries.

Every ender — the owner's `end_run`, a `with` block's exception, the crash hooks, the exit hook, the exec
wrapper, the reaper, the ingest API — describes the end as an `Ending`; `lifecycle.end_run` turns it into the
one write. A value only: this module imports nothing of the process state, so the state can keep an open run's
`pending` end without importing the lifecycle that writes it.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

from ..base.outcomes import FAILURE, SUCCESS
from ..base.records import Record

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

# Crash kinds (`kind` in a crashed run's summary_json).
UNCAUGHT_EXCEPTION = "uncaught_exception"
KEYBOARD_INTERRUPT = "keyboard_interrupt"
EXCEPTION = "exception"  # seen by `with tracker.run()` / @track
SIGNAL = "signal"
EXIT = "exit"
LOST = "lost"  # ended by the reaper

# How a lost run's end is known (`end` in its summary; docs/reaper.md#when-a-lost-run-ended).
END_OBSERVED = "observed"  # a monitor saw its process die (pidfd): finished_at is that moment
END_ESTIMATED = "estimated"  # nobody saw it die: finished_at is its last sign of life, `estimated_from`:
FROM_HEARTBEAT = "heartbeat"  # its last heartbeat
FROM_ACTIVITY = "activity"  # the last step start or end or error it wrote
FROM_START = "start"  # its start (it died before any other sign of life)
FROM_SEEN_ALIVE = "seen_alive"  # the last moment a monitor waiting on its process knew it alive
# ... as the dashboard and the alerts say it: "ended: estimated from <this> at <finished_at>".
ESTIMATED_FROM = {FROM_HEARTBEAT: "the last heartbeat", FROM_ACTIVITY: "the last step or error it wrote",
                  FROM_START: "its start (no sign of life after it)",
                  FROM_SEEN_ALIVE: "the last moment the monitor knew its process alive"}


class Ending(Record):
    """How a run ended, as its ender knows it."""

    __slots__ = ("outcome", "summary_json", "summary", "kind", "message", "stack", "exit_code", "name_step",
                 "reaped", "death", "output_tail", "log_lines", "asked_ms")

    def __init__(self, outcome: str, *, summary_json: str | None = None, summary: dict[str, Any] | None = None,
                 kind: str | None = None, message: str | None = None, stack: str | None = None,
                 exit_code: int | None = None, name_step: bool = False, reaped: tuple[str, str] | None = None,
                 output_tail: str | None = None, log_lines: str | None = None, asked_ms: int | None = None,
                 death: tuple[int, int] | None = None) -> None:
        self.outcome = outcome
        self.summary_json = summary_json  # a normal end: the pipeline's stats, stored as they are
        self.summary = summary  # or: fields of the summary object (a crash adds its own)
        self.kind = kind  # a crash: its kind (UNCAUGHT_EXCEPTION, SIGNAL, EXIT, LOST, ...)
        self.message = message  # with it, a `crash` error row is added
        self.stack = stack
        self.exit_code = exit_code
        self.name_step = name_step  # the crash row's message names the step in progress
        # (reaped_at, reason): the reaper's verdict. The run then ends at its last sign of life in the
        # database; any other end at the moment it is written (see `lifecycle._build`).
        self.reaped = reaped
        # With the reaper's verdict, the owner's death as a monitor saw it (pidfd): (last known alive, seen dead),
        # ms. The run then ends when it died, not at its last sign of life (see `lifecycle.lost_run_end`).
        self.death = death
        self.output_tail = output_tail
        self.log_lines = log_lines  # the process's last log lines, after the stack in the crash row (logring)
        # When the owner asked for this end (its `end_run` call): the run's finished_at, even when the database
        # was away then and the end is written later (lifecycle.write_pending, the exit hook, the reaper).
        self.asked_ms = asked_ms

    def without_crash_row(self) -> Ending:
        fields = self.fields()
        fields.pop("outcome")
        return Ending(self.outcome, **{**fields, "message": None})  # type: ignore[arg-type]

    def with_log_lines(self, lines: Callable[[], str | None]) -> Ending:
        """This end with the run's last log lines (`lines()`, taken now), if it leaves a crash row and has none
        yet."""
        if self.message is None or self.kind is None or self.log_lines is not None:
            return self
        text = lines()
        if text is None:
            return self
        fields = self.fields()
        fields.pop("outcome")
        return Ending(self.outcome, **{**fields, "log_lines": text})  # type: ignore[arg-type]


def crash(outcome_kind: str, exc: BaseException | None, **fields: Any) -> Ending:
    """The `failure` end of a run whose process (or block) died of `exc`."""
    message, stack = format_exception(exc)
    return Ending(FAILURE, kind=outcome_kind, message=message, stack=stack, **fields)


def format_exception(exc: BaseException | None) -> tuple[str, str | None]:
    """(message, stack) of an exception, as the crash row stores them."""
    if exc is None:
        return "", None
    try:
        text = str(exc)
    except Exception:  # a broken __str__ costs the text, never the crash row
        text = "<exception str() failed>"
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    try:
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # MemoryError or a broken __str__ while formatting: keep what we have
        stack = None
    return message, stack


def exception_ending(exc: BaseException) -> Ending:
    """The end of a run whose `with` block or decorated function died of `exc`: `failure` with the exception as
    its crash; `SystemExit(0)` (sys.exit() inside the block) ends it `success`."""
    code = exit_status(exc.code) if isinstance(exc, SystemExit) else None
    if code == 0:
        return Ending(SUCCESS)
    if isinstance(exc, KeyboardInterrupt):
        kind = KEYBOARD_INTERRUPT
    else:
        kind = EXIT if code is not None else EXCEPTION
    return crash(kind, exc, exit_code=code, summary=None if code is None else {"exit_code": code})


def exit_status(code: object) -> int:
    """The exit status of `sys.exit(code)` / `SystemExit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return int(code)  # sys.exit(True) exits 1: a plain int, not the bool, goes into runs.exit_code
    return 1  # sys.exit("message") prints the message and exits 1
