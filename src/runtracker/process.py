"""Process-wide state: the runs this process has open, and what is known about how it is ending.

The crash hooks finish every open run of *this* process, whichever tracker started it. The registry is keyed
by run and store so that two trackers on two databases are both covered. After fork the child starts with an
empty registry: the parent's runs are the parent's (see `hooks._on_fork_child`).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import sanitize
from .config import now_iso
from .outcomes import CRASH_STEP, FAILURE
from .storage import RunEnd, StepEnd, Store

if TYPE_CHECKING:
    from .storage import ErrorRow


@dataclass
class OpenStep:
    step_id: int
    name: str
    started: float  # time.monotonic()


@dataclass
class OpenRun:
    """What a crash handler needs to finish a run without asking the tracker that started it."""

    store: Store
    run_id: int
    pipeline: str
    club_slug: str | None
    started: float  # time.monotonic()
    steps: dict[int, OpenStep] = field(default_factory=dict)
    known_steps: set[int] = field(default_factory=set)
    # Crash rows recorded while the run went on (a thread or task died): it can no longer end `success`.
    crashes: int = 0
    # An end_run whose write failed; the exit hook retries it with the outcome the pipeline asked for.
    pending_end: tuple[str, str | None] | None = None

    def current_step(self) -> OpenStep | None:
        return next(reversed(self.steps.values()), None)


_lock = threading.RLock()
_open: dict[tuple[int, int], OpenRun] = {}
owner_pid = os.getpid()
# What is known about how the process is ending: the code passed to sys.exit, a signal being handled.
exit_code: int | None = None
pending_signal: int | None = None


def register(run: OpenRun) -> None:
    with _lock:
        _open[(id(run.store), run.run_id)] = run


def unregister(run: OpenRun) -> None:
    with _lock:
        _open.pop((id(run.store), run.run_id), None)


def open_runs() -> list[OpenRun]:
    """The runs this process has open; none in a forked child that started none of its own."""
    with _lock:
        if os.getpid() != owner_pid:
            return []
        return list(_open.values())


def reset_after_fork() -> None:
    """In a forked child: forget the parent's runs and locks a parent thread may have held at fork time."""
    global _lock, owner_pid, exit_code, pending_signal
    _lock = threading.RLock()
    _open.clear()
    owner_pid = os.getpid()
    exit_code = None
    pending_signal = None


def format_exception(exc: BaseException | None) -> tuple[str, str | None]:
    """(message, stack) of an exception, as the crash row stores them."""
    if exc is None:
        return "", None
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # MemoryError or a broken __str__ while formatting: keep what we have
        stack = None
    return message, stack


def crash_error_row(run: OpenRun, message: str, stack: str | None, at: str) -> ErrorRow:
    step = run.current_step()
    return crash_row(run.run_id, step.step_id if step else None, run.club_slug, message, stack, at)


def crash_row(run_id: int, step_id: int | None, club_slug: str | None, message: str, stack: str | None,
              at: str) -> ErrorRow:
    """The `crash` error row a dying run leaves (the reaper builds it from database rows, not an OpenRun)."""
    return (
        run_id,
        step_id,
        club_slug,
        CRASH_STEP,
        None,
        sanitize.text(message or "crash", sanitize.MESSAGE_LIMIT),
        sanitize.optional_text(stack, sanitize.STACK_LIMIT),
        at,
    )


def crash_summary(kind: str, message: str, step_name: str | None = None, exit_code: int | None = None,
                  signal_name: str | None = None) -> dict[str, object]:
    """The summary_json of a crashed run: `{"crash": true, "kind": ..., "error": ...}` and what else is known."""
    summary: dict[str, object] = {"crash": True, "kind": kind, "error": message}
    if step_name is not None:
        summary["step_in_progress"] = step_name
    if exit_code is not None:
        summary["exit_code"] = exit_code
    if signal_name is not None:
        summary["signal"] = signal_name
    return summary


def crash_end(run: OpenRun, kind: str, message: str, at: str, exit_code: int | None = None,
              signal_name: str | None = None) -> tuple[RunEnd, list[StepEnd]]:
    """The failure end of a run that crashed, with its open steps ended as `failure` too."""
    now = time.monotonic()
    step = run.current_step()
    summary = crash_summary(kind, message, step.name if step else None, exit_code, signal_name)
    steps = [
        StepEnd(s.step_id, FAILURE, at, int((now - s.started) * 1000), detail_json=sanitize.to_json({"crash": kind}))
        for s in run.steps.values()
    ]
    end = RunEnd(run.run_id, FAILURE, at, int((now - run.started) * 1000), sanitize.to_json(summary), exit_code)
    return end, steps


def finish_all_crashed(kind: str, message: str, stack: str | None, *, exit_code: int | None = None,
                       signal_name: str | None = None) -> list[int]:
    """Mark every open run of this process `failure` with a crash row; returns the run ids it ended.

    Runs are grouped by store so each database gets one transaction. A failure on one store is logged and
    does not stop the others.
    """
    from .guard import report

    at = now_iso()
    by_store: dict[int, list[OpenRun]] = {}
    for run in open_runs():
        by_store.setdefault(id(run.store), []).append(run)
    ended: list[int] = []
    for runs in by_store.values():
        try:
            batch = []
            for run in runs:
                end, steps = crash_end(run, kind, message, at, exit_code, signal_name)
                batch.append((end, steps, [crash_error_row(run, message, stack, at)]))
            ended += runs[0].store.end_runs_crashed(batch)
        except Exception as exc:
            report(f"recording a crash ({kind})", exc)
        finally:
            for run in runs:
                unregister(run)
    return ended


def record_crash_rows(kind: str, message: str, stack: str | None) -> None:
    """A thread or task died but the process goes on: a crash row on every open run, which cannot end `success`."""
    from .guard import report

    at = now_iso()
    for run in open_runs():
        run.crashes += 1
        try:
            run.store.insert_errors([crash_error_row(run, f"{kind}: {message}", stack, at)])
        except Exception as exc:
            report(f"recording a crash row ({kind})", exc)
