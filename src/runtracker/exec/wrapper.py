"""`runtracker exec`: run any command as a tracked run, and exit as the command did.

The order of things, and why:
1. Open the run (reaping lost runs first, as start_run does; with --lock, the insert itself is the lock).
   A database that cannot be reached never stops the command: it runs untracked, with a warning, unless
   --lock was asked for, which cannot be honoured without the database.
2. Install the signal forwarders (signals.py), then start the command in our process group with its stdout
   and its stderr on a pipe each, and RUNTRACKER_RUN_ID / RUNTRACKER_DB in its environment (attach.py).
3. A pump thread per stream passes it through to ours and feeds the one tail (output.py); a reader of ours
   that goes away is passed on to the command as a closed pipe. The main thread waits, enforcing the timeout.
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
from dataclasses import dataclass, field
from typing import Any

from ..base import sanitize, terminal
from ..base.clock import now_ms
from ..base.guard import report
from ..base.outcomes import FAILURE, PARTIAL, SUCCESS
from ..base.tail import OutputTail
from ..base.units import format_duration
from ..core import lifecycle, opening
from ..core.attach import RUN_ID_ENV, child_view, worse
from ..core.ending import Ending
from ..core.opening import Locked
from ..core.state import OpenRun
from ..settings import values
from ..settings.pipelines import ExecSettings
from ..settings.values import DB_ENV, resolve_db
from ..storage import Runs
from .command import EXIT_LOCKED, STARTED_BY_ENV
from .oom import OomWatch
from .output import Passthrough
from .signals import Forwarder, die_by_signal, signal_name

EXIT_TIMEOUT = 124  # as coreutils `timeout`
EXIT_NOT_EXECUTABLE = 126  # as a shell
EXIT_NOT_FOUND = 127  # as a shell
PIPELINE_ENV = "RUNTRACKER_PIPELINE"

# What the user reads on stderr (and, for failures, in the run's crash row).
NOT_FOUND = "{program}: command not found"
NOT_EXECUTABLE = "{program}: cannot execute: {reason}"
EXITED = "exited with code {code}"
KILLED_BY = "killed by {signal}"
READER_GONE = " (the reader of its {streams} went away)"
READERS_GONE = " (the readers of its {streams} went away)"
PASSED_ON = " (received by runtracker exec and passed on)"
TIMED_OUT = "timed out after {limit}: sent SIGTERM, {then}"
TIMEOUT_EXITED = "the command then exited with code {code}"
TIMEOUT_SIGNALLED = "the command then died of {signal}"
TIMEOUT_KILLED = "then SIGKILL after {grace}"
# The one line on stderr when the timeout ended the command: cron mails what a job wrote, and an exit status 124
# alone says nothing to whoever reads that mail.
TIMED_OUT_SAID = "runtracker exec: {command} ({pipeline}{run}) {message}; exit status {code}"
_SAID_COMMAND_LIMIT = 200
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
class CommandEnd:
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
    readers_gone: list[str] = field(default_factory=list)  # "stdout", "stderr": our reader went away (EPIPE)


def run(request: ExecRequest) -> int:
    """Run the command as a tracked run; returns the exit status for the wrapper (or dies by a signal)."""
    pipeline = sanitize.name(request.pipeline)
    try:
        open_run = _open_run(pipeline, request)
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
        _say(timed_out_line(request, ending, open_run))
        return EXIT_TIMEOUT
    if ending.signum is not None:
        # Dying by a signal skips atexit handlers: run them first, as a normal exit would (the exit handler
        # writes the run's end if it could not be written yet, and removes the empty faulthandler file).
        atexit._run_exitfuncs()
        die_by_signal(ending.signum)
    return ending.exit_code if ending.exit_code is not None else 1


def timed_out_line(request: ExecRequest, ending: CommandEnd, open_run: OpenRun | None) -> str:
    """`runtracker exec: sleep 60 (nikki, run 42) timed out after 30s: sent SIGTERM, then SIGKILL after 10s; exit
    status 124`: the command (cut, and made safe for a terminal), the pipeline and run, and what was done."""
    command = shlex.join(request.command)
    if len(command) > _SAID_COMMAND_LIMIT:
        command = command[:_SAID_COMMAND_LIMIT] + "…"
    run = f", run {open_run.run_id}" if open_run is not None and open_run.run_id is not None else ", untracked"
    return terminal.safe(TIMED_OUT_SAID.format(command=command, pipeline=request.pipeline, run=run,
                                               message=ending.message, code=EXIT_TIMEOUT))


def _open_run(pipeline: str, request: ExecRequest) -> OpenRun:
    """Open the run, as start_run does; raises Locked if --lock and another run holds the lock."""
    run = opening.open_run(
        pipeline=pipeline, club_slug="rondo", started_ms=now_ms(), db=request.db, door="before exec",
        lock_key=pipeline if request.settings.lock else None,
        started_by=sanitize.optional_text(os.environ.get(STARTED_BY_ENV) or None, sanitize.NAME_LIMIT),
    )
    assert not isinstance(run, int)  # an OpenRun: not an API key's run
    return run


def _execute(request: ExecRequest, open_run: OpenRun | None,
             forwarder: Forwarder) -> tuple[CommandEnd, OutputTail]:
    settings = request.settings
    tail = OutputTail(settings.tail)
    oom = OomWatch()  # before the command starts: the kernel log is read from this point on
    try:
        # restore_signals: the command starts with SIGPIPE at its default (Python ignores it in the wrapper), so
        # that a reader of ours going away ends it by SIGPIPE, as a shell, cron or a terminal would start it.
        proc = subprocess.Popen(request.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                                env=_child_env(request, open_run), restore_signals=True)
    except OSError as exc:
        oom.close()
        ending = _not_started(request.command[0], exc)
        _say(f"runtracker exec: {ending.message}")
        return ending, tail
    assert proc.stdout is not None and proc.stderr is not None
    output = Passthrough(proc.stdout, proc.stderr, tail)
    output.start()
    forwarder.attach(proc.send_signal)
    try:
        ending = _wait(proc, settings)
    finally:
        forwarder.detach()
    ending.received, ending.passed_on = list(forwarder.received), list(forwarder.passed_on)
    ending.output_complete = output.finish(_OUTPUT_IDLE_S)
    ending.readers_gone = output.readers_gone()
    _describe(ending, proc.pid, oom, settings)
    oom.close()
    return ending, tail


def _child_env(request: ExecRequest, open_run: OpenRun | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(values.child_environment())  # the config file's [redact] too
    if open_run is None:
        env.pop(RUN_ID_ENV, None)  # never let an untracked command join a run of an outer wrapper
        return env
    env[RUN_ID_ENV] = str(open_run.run_id)
    env[DB_ENV] = str(resolve_db(request.db))
    env[PIPELINE_ENV] = open_run.pipeline
    return env


def _not_started(program: str, exc: OSError) -> CommandEnd:
    if isinstance(exc, FileNotFoundError):
        return CommandEnd(exit_code=EXIT_NOT_FOUND, kind="not_found", message=NOT_FOUND.format(program=program))
    reason = exc.strerror or str(exc)
    return CommandEnd(exit_code=EXIT_NOT_EXECUTABLE, kind="not_executable",
                  message=NOT_EXECUTABLE.format(program=program, reason=reason))


def _wait(proc: subprocess.Popen[bytes], settings: ExecSettings) -> CommandEnd:
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


def _ended(returncode: int) -> CommandEnd:
    if returncode < 0:
        return CommandEnd(signum=-returncode)
    return CommandEnd(exit_code=returncode)


def _describe(ending: CommandEnd, pid: int, oom: OomWatch, settings: ExecSettings) -> None:
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
        elif ending.signum == signal.SIGPIPE:
            ending.message += _readers_gone(ending.readers_gone)
    elif ending.exit_code:
        ending.kind = "exit"
        ending.message = EXITED.format(code=ending.exit_code) + _readers_gone(ending.readers_gone)


def _readers_gone(streams: list[str]) -> str:
    """Why a command died of SIGPIPE (or exited on EPIPE): the reader of its output went away. "" if none did."""
    if not streams:
        return ""
    return (READER_GONE if len(streams) == 1 else READERS_GONE).format(streams=" and ".join(streams))


def _record(open_run: OpenRun, request: ExecRequest, ending: CommandEnd, tail: OutputTail) -> None:
    """End the run with everything known. A failure to write is logged; the end stays the run's pending end,
    which the exit handler writes (never a generic failure instead), and the exit status is still ours."""
    try:
        current = None if open_run.run_id is None else Runs(open_run.store).get_run(open_run.run_id)
        view = child_view(current.get("summary_json") if current else None)
    except Exception as exc:  # what a Python child reported is lost; the command's own end is not
        report("reading what the command's Python child reported", exc)
        view = None
    outcome = FAILURE if ending.message else SUCCESS
    if outcome == SUCCESS and view and view.get("outcome") in (PARTIAL, FAILURE):
        outcome = worse(outcome, view["outcome"])
    end = Ending(outcome, summary=_summary(request, ending, tail, view),
                           kind=ending.kind if ending.message else None, message=ending.message,
                           exit_code=ending.exit_code, output_tail=tail.text())
    try:
        lifecycle.end_run(open_run.store, open_run.run_id, end, run=open_run)
    except Exception as exc:
        report("recording the end of the exec run", exc)


def _summary(request: ExecRequest, ending: CommandEnd, tail: OutputTail,
             view: dict[str, Any] | None) -> dict[str, Any]:
    command = shlex.join(request.command)
    summary: dict[str, Any] = {"command": command[:_COMMAND_LIMIT]}  # a failure's crash fields: lifecycle
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
    if ending.readers_gone:
        summary["output_closed"] = " and ".join(ending.readers_gone)  # "stdout", "stderr", "stdout and stderr"
    if view:
        summary["child"] = view
    return summary


def _say(message: str) -> None:
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
