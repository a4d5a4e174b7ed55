"""`runtracker exec`: run any command as a tracked run, and exit as the command did.

The order of things, and why:
1. Open the run (reaping lost runs first, as start_run does; with --lock, the insert itself is the lock).
   A database that cannot be reached never stops the command: it runs untracked, with a warning, unless
   --lock was asked for, which cannot be honoured without the database.
2. Install the signal forwarders (signals.py), then start the command in our process group with its combined
   stdout+stderr on a pipe, and RUNTRACKER_RUN_ID / RUNTRACKER_DB in its environment (attach.py).
3. A pump thread passes the output through and keeps its tail; the main thread waits, enforcing the timeout.
4. Record the end: outcome, exit code or signal, timeout, output tail, what an attached Python child
   reported. The wrapper owns the run: nothing else ends it while it lives (if it is SIGKILLed, the reaper
   does, as for any process).
5. Exit with the command's status, or die by the command's signal, so cron and systemd see what they would
   have seen. A timeout exits 124, as coreutils `timeout` does.
"""

from __future__ import annotations

import atexit
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .. import config, heartbeat, hooks, process, reaper, sanitize
from ..attach import RUN_ID_ENV, child_view, worse
from ..config import DB_ENV, parse_iso, resolve_db
from ..guard import report
from ..outcomes import FAILURE, PARTIAL, SUCCESS
from ..pipelines import ExecSettings
from ..storage import RunEnd, StepEnd
from ..tracker import RunTracker, _hostname, _process_key, _process_started_at
from .oom import OomWatch
from .output import OutputTail, Pump
from .signals import Forwarder, die_by_signal, signal_name
from .units import format_duration

EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock; try again later
EXIT_TIMEOUT = 124  # as coreutils `timeout`
EXIT_NOT_EXECUTABLE = 126  # as a shell
EXIT_NOT_FOUND = 127  # as a shell
PIPELINE_ENV = "RUNTRACKER_PIPELINE"

# What the user reads on stderr (and, for failures, in the run's crash row).
NOT_FOUND = "{program}: command not found"
NOT_EXECUTABLE = "{program}: cannot execute: {reason}"
EXITED = "exited with code {code}"
KILLED_BY = "killed by {signal}"
PASSED_ON = " (received by runtracker exec and passed on)"
TIMED_OUT = "timed out after {limit}: sent SIGTERM, {then}"
TIMEOUT_EXITED = "the command then exited with code {code}"
TIMEOUT_SIGNALLED = "the command then died of {signal}"
TIMEOUT_KILLED = "then SIGKILL after {grace}"
LOCKED = (
    "runtracker exec: pipeline {pipeline!r} is already running (run {run_id}, pid {pid} on {host}, started "
    "{started}); not started because of --lock. Exit status {code}; nothing recorded."
)
LOCK_UNAVAILABLE = (
    "runtracker exec: cannot take the lock of pipeline {pipeline!r}: the database is unavailable ({error}). "
    "Not started: --lock cannot be honoured without the database. Exit status {code}."
)
UNTRACKED = "runtracker exec: the database is unavailable ({error}); running the command untracked"
_COMMAND_LIMIT = 1000
_OUTPUT_IDLE_S = 1.0


@dataclass(frozen=True)
class ExecRequest:
    pipeline: str
    command: tuple[str, ...]
    settings: ExecSettings = field(default_factory=ExecSettings)
    db: str | None = None


@dataclass
class Ending:
    """How the command ended, as the run records it."""

    exit_code: int | None = None  # the command's own exit code; 127/126 when it could not be started
    signum: int | None = None  # the signal that killed it
    timed_out: bool = False
    killed: bool = False  # the timeout's grace ran out and SIGKILL was sent
    message: str | None = None  # why it failed; None on success
    kind: str | None = None  # "exit", "signal", "timeout", "not_found", "not_executable"
    received: list[int] = field(default_factory=list)  # signals the wrapper received while the command ran
    passed_on: list[int] = field(default_factory=list)  # those it sent on (a terminal's Ctrl-C is not)
    output_complete: bool = True


class Locked(Exception):
    """Another `running` run holds the pipeline's lock."""

    def __init__(self, holder: dict[str, Any]) -> None:
        super().__init__(holder.get("id"))
        self.holder = holder


def run(request: ExecRequest) -> int:
    """Run the command as a tracked run; returns the exit status for the wrapper (or dies by a signal)."""
    tracker = RunTracker(request.pipeline, db=request.db)
    try:
        open_run = _open_run(tracker, request.settings.lock)
    except Locked as locked:
        holder = locked.holder
        _say(LOCKED.format(pipeline=request.pipeline, run_id=holder.get("id"), pid=holder.get("pid"),
                           host=holder.get("hostname"), started=holder.get("started_at"), code=EXIT_LOCKED))
        return EXIT_LOCKED
    except Exception as exc:
        report("opening the exec run", exc)
        if request.settings.lock:
            _say(LOCK_UNAVAILABLE.format(pipeline=request.pipeline, error=_short(exc), code=EXIT_LOCKED))
            return EXIT_LOCKED
        _say(UNTRACKED.format(error=_short(exc)))
        open_run = None
    # Installed before the command starts and removed only after the run is recorded: from here on, no
    # SIGINT, SIGQUIT, SIGTERM or SIGHUP ends the wrapper before its run is written.
    forwarder = Forwarder()
    forwarder.install()
    try:
        ending, tail = _execute(request, open_run, forwarder)
        if open_run is not None:
            _record(open_run, request, ending, tail)
    finally:
        forwarder.uninstall()
    if ending.timed_out:
        return EXIT_TIMEOUT
    if ending.signum is not None:
        # Dying by a signal skips atexit handlers: run them first, as a normal exit would (they remove the
        # empty faulthandler file and flush the logs; the run is recorded and no longer open).
        atexit._run_exitfuncs()
        die_by_signal(ending.signum)
    return ending.exit_code if ending.exit_code is not None else 1


def _open_run(tracker: RunTracker, lock: bool) -> process.OpenRun:
    """Insert the `running` run, as start_run does; raises Locked if --lock and another run holds the lock."""
    store = tracker._get_store()
    hooks.install()  # the wrapper's own crash (a bug of ours) still ends its run
    try:
        reaper.reap_at_start(store, tracker.heartbeat_timeout_s)
    except Exception as exc:
        report("reaping lost runs before exec", exc)
    cutoff = config.retention_cutoff(tracker.retention_days)
    lock_key = tracker.pipeline if lock else None
    for attempt in range(3):
        run_id = store.insert_run(
            pipeline=tracker.pipeline, club_slug=tracker.club_slug, started_at=config.now_iso(),
            hostname=_hostname(), pid=os.getpid(), process_started_at=_process_started_at(),
            process_key=_process_key(), retention_cutoff=cutoff, lock_key=lock_key,
        )
        if run_id is not None:
            run = process.OpenRun(store, run_id, tracker.pipeline, tracker.club_slug, time.monotonic())
            process.register(run)
            heartbeat.run_opened(store, tracker.heartbeat_s)
            return run
        assert lock_key is not None
        if attempt == 0:
            # The holder may have died after the reaping above (or between two hosts' reaps): look again.
            reaper.reap(store, heartbeat_timeout=tracker.heartbeat_timeout_s, detected_by="runtracker exec --lock")
        holder = store.lock_holder(lock_key)
        if holder is not None:
            raise Locked(holder)
        # The holder ended between our insert and our look: try again.
    raise Locked({"id": "?", "pid": "?", "hostname": "?", "started_at": "?"})


def _execute(request: ExecRequest, open_run: process.OpenRun | None,
             forwarder: Forwarder) -> tuple[Ending, OutputTail]:
    settings = request.settings
    tail = OutputTail(settings.tail)
    oom = OomWatch()  # before the command starts: the kernel log is read from this point on
    try:
        proc = subprocess.Popen(request.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
                                env=_child_env(request, open_run))
    except OSError as exc:
        oom.close()
        ending = _not_started(request.command[0], exc)
        _say(f"runtracker exec: {ending.message}")
        return ending, tail
    assert proc.stdout is not None
    pump = Pump(proc.stdout, tail)
    pump.start()
    forwarder.attach(proc.send_signal)
    try:
        ending = _wait(proc, settings)
    finally:
        forwarder.detach()
    ending.received, ending.passed_on = list(forwarder.received), list(forwarder.passed_on)
    ending.output_complete = pump.finish(_OUTPUT_IDLE_S)
    _describe(ending, proc.pid, oom, settings)
    oom.close()
    return ending, tail


def _child_env(request: ExecRequest, open_run: process.OpenRun | None) -> dict[str, str]:
    env = dict(os.environ)
    if open_run is None:
        env.pop(RUN_ID_ENV, None)  # never let an untracked command join a run of an outer wrapper
        return env
    env[RUN_ID_ENV] = str(open_run.run_id)
    env[DB_ENV] = str(resolve_db(request.db))
    env[PIPELINE_ENV] = open_run.pipeline
    return env


def _not_started(program: str, exc: OSError) -> Ending:
    if isinstance(exc, FileNotFoundError):
        return Ending(exit_code=EXIT_NOT_FOUND, kind="not_found", message=NOT_FOUND.format(program=program))
    reason = exc.strerror or str(exc)
    return Ending(exit_code=EXIT_NOT_EXECUTABLE, kind="not_executable",
                  message=NOT_EXECUTABLE.format(program=program, reason=reason))


def _wait(proc: subprocess.Popen[bytes], settings: ExecSettings) -> Ending:
    """Wait for the command; past the timeout, SIGTERM it and its descendants, then SIGKILL after the grace."""
    if not settings.timeout:
        return _ended(proc.wait())
    try:
        return _ended(proc.wait(timeout=settings.timeout))
    except subprocess.TimeoutExpired:
        pass
    tree = _signal_tree(proc, signal.SIGTERM, [])
    try:
        ending = _ended(proc.wait(timeout=settings.kill_after))
    except subprocess.TimeoutExpired:
        _signal_tree(proc, signal.SIGKILL, tree)
        ending = _ended(proc.wait())
        ending.killed = True
    ending.timed_out = True
    return ending


def _signal_tree(proc: subprocess.Popen[bytes], signum: int, known: list[Any]) -> list[Any]:
    """Send `signum` to the command and every descendant (a shell script's children are the job too).

    psutil's send_signal checks each process's start time first, so a pid reused meanwhile is never hit.
    """
    import psutil

    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        tree = []
    proc.send_signal(signum)
    for child in {p.pid: p for p in [*known, *tree]}.values():
        try:
            child.send_signal(signum)
        except psutil.Error:
            pass
    return [*known, *tree]


def _ended(returncode: int) -> Ending:
    if returncode < 0:
        return Ending(signum=-returncode)
    return Ending(exit_code=returncode)


def _describe(ending: Ending, pid: int, oom: OomWatch, settings: ExecSettings) -> None:
    """Fill in the kind and the message of a failed ending."""
    if ending.timed_out:
        if ending.killed:
            then = TIMEOUT_KILLED.format(grace=format_duration(settings.kill_after))
        elif ending.signum is not None:
            then = TIMEOUT_SIGNALLED.format(signal=signal_name(ending.signum))
        else:
            then = TIMEOUT_EXITED.format(code=ending.exit_code)
        ending.kind = "timeout"
        ending.message = TIMED_OUT.format(limit=format_duration(settings.timeout or 0), then=then)
    elif ending.signum is not None:
        ending.kind = "signal"
        if ending.signum == signal.SIGKILL:
            ending.message = oom.reason(pid)
        else:
            ending.message = KILLED_BY.format(signal=signal_name(ending.signum))
        if ending.signum in ending.passed_on:
            ending.message += PASSED_ON
    elif ending.exit_code:
        ending.kind = "exit"
        ending.message = EXITED.format(code=ending.exit_code)


def _record(open_run: process.OpenRun, request: ExecRequest, ending: Ending, tail: OutputTail) -> None:
    """End the run with everything known; a failure to write is logged and the exit status is still ours."""
    try:
        store = open_run.store
        current = store.get_run(open_run.run_id)
        view = child_view(current.get("summary_json") if current else None)
        outcome = FAILURE if ending.message else SUCCESS
        if outcome == SUCCESS and view and view.get("outcome") in (PARTIAL, FAILURE):
            outcome = worse(outcome, view["outcome"])
        at = config.now_iso()
        summary = _summary(request, ending, tail, view)
        end = RunEnd(open_run.run_id, outcome, at, int((time.monotonic() - open_run.started) * 1000),
                     sanitize.to_json(summary), ending.exit_code)
        errors = [process.crash_error_row(open_run, ending.message, None, at)] if ending.message else []
        store.end_exec_run(end, _open_steps(store, open_run.run_id, outcome, at), errors, tail.text())
    except Exception as exc:
        report("recording the end of the exec run", exc)
        return  # still registered: the exit hook records a failure, or the reaper finds the run
    process.unregister(open_run)
    heartbeat.run_closed()


def _summary(request: ExecRequest, ending: Ending, tail: OutputTail, view: dict[str, Any] | None) -> dict[str, Any]:
    command = shlex.join(request.command)
    summary: dict[str, Any] = {"command": command[:_COMMAND_LIMIT]}
    if ending.message:
        summary.update(crash=True, kind=ending.kind, error=ending.message)
    if ending.exit_code is not None:
        summary["exit_code"] = ending.exit_code
    if ending.signum is not None:
        summary["signal"] = signal_name(ending.signum)
    if ending.timed_out:
        summary.update(timeout=True, timeout_s=request.settings.timeout)
    if ending.received:
        summary["signals_received"] = [signal_name(s) for s in ending.received]
    summary["output_bytes"] = tail.total
    if not ending.output_complete:
        summary["output_complete"] = False  # a process the command left behind still holds its output
    if view:
        summary["child"] = view
    return summary


def _open_steps(store: Any, run_id: int, outcome: str, at: str) -> list[StepEnd]:
    """Steps an attached child left open (it was killed mid-step): ended with the run."""
    steps = []
    for step in store.list_steps(run_id):
        if step["finished_at"] is None:
            try:
                ms = int((parse_iso(at) - parse_iso(step["started_at"])).total_seconds() * 1000)
            except ValueError:
                ms = 0
            steps.append(StepEnd(step["id"], FAILURE if outcome == FAILURE else PARTIAL, at, max(ms, 0),
                                 detail_json='{"unfinished": true}'))
    return steps


def _say(message: str) -> None:
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
