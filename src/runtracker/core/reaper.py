"""The reaper: ends `running` runs whose owning process is gone (SIGKILL, OOM killer, os._exit, segfault, power
loss, a lost host), which no in-process hook can see.

`reap(store)` looks at the `running` runs (one probe of `idx_runs_running`), judges each owner
(`liveness.judge`: same host by pid at once, another host by heartbeat age) and ends each lost run `failure`,
with `finished_at` at its last sign of life (its last heartbeat, or a later step start/end or error: the true
end lies between that and the detection), `duration_ms`, step totals, its open steps ended `failure`, a
`crash` error row saying the process was lost, how it was detected and which step was in progress (with the
faulthandler traceback of a fatal signal when there is one), and `reaped_at` / `reap_reason` on the run.

It runs at every `start_run` (never touching the caller's own open runs), from `runtracker reap`, and as the
loop of `runtracker monitor` (`monitor`: every pass, at once when a same-host owner dies (`pidwatch`), and
with the alerts' watcher).

Every end is a compare-and-set on `outcome = 'running'` inside one transaction (see `Store.reap_run`): two
reapers racing, or a reaper racing the owner's own end_run, never both act. An owner that was alive after all
(a partitioned host) and ends its run later wins: its outcome replaces the reaper's, and `reaped_at` /
`reap_reason` and the crash row keep that the reaper had declared it lost (see `Store.end_reaped_run`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence

from ..base import sanitize
from ..base.clock import iso, now_ms
from ..base.outcomes import FAILURE
from ..base.records import Record
from ..config import heartbeat_timeout_s, ownerless_timeout_s
from ..storage import ENDED, Runs, Store
from . import heartbeat, lifecycle, liveness
from .lifecycle import LOST, Ending
from .state import STATE

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Watcher(Protocol):
        """What a monitor does besides reaping (`runtracker.alerts.watcher.Watcher`): `tick` often, `evaluate`
        every pass."""

        def tick(self, running: Sequence[dict[str, Any]] | None = None) -> int: ...

        def evaluate(self, running: Sequence[dict[str, Any]] | None = None) -> int: ...

log = logging.getLogger("runtracker")

DEFAULT_MONITOR_INTERVAL_S = 5.0


class Reaped(Record):
    """One run the reaper ended (`fields()` is what `runtracker reap --json` prints)."""

    __slots__ = ("run_id", "pipeline", "hostname", "pid", "reason", "message", "step_in_progress", "finished_at",
                 "reaped_at", "detected_by", "traceback")

    def __init__(self, run_id: int, pipeline: str, hostname: str | None, pid: int | None, reason: str,
                 message: str, step_in_progress: str | None, finished_at: str, reaped_at: str, detected_by: str,
                 traceback: bool) -> None:
        self.run_id = run_id
        self.pipeline = pipeline
        self.hostname = hostname
        self.pid = pid
        self.reason = reason  # liveness.PID_GONE, PID_REUSED or HEARTBEAT_TIMEOUT
        self.message = message  # the crash row's message
        self.step_in_progress = step_in_progress
        self.finished_at = finished_at  # the run's last sign of life
        self.reaped_at = reaped_at
        self.detected_by = detected_by
        self.traceback = traceback  # a faulthandler traceback was attached


OnReaped = Callable[[Reaped], None]


def reap(store: Store, *, heartbeat_timeout: float | None = None, detected_by: str = "runtracker reap",
         on_reaped: OnReaped | None = None, sweep: bool = True,
         ownerless_timeout: float | None = None, rows: Sequence[dict[str, Any]] | None = None) -> list[Reaped]:
    """End every `running` run of `store` whose owner is gone; returns what it ended. Raises on database errors.

    The runs this process has open itself are never judged. `sweep` also removes faulthandler files left by
    this host's dead processes that own no `running` run (see `_sweep_crash_files`). `rows`: judge only these
    runs (rows as `Runs.running_runs` gives them; the monitor's, whose owner it saw die).
    """
    rows = Runs(store).running_runs() if rows is None else rows
    if sweep:
        _sweep_crash_files(store, rows)
    if not rows:
        return []
    observer = liveness.Observer.here(heartbeat_timeout_s(heartbeat_timeout), now_ms(),
                                      *_ownerless_timeouts(rows, ownerless_timeout))
    own = {run.run_id for run in STATE.open_runs() if run.store is store}
    reaped: list[Reaped] = []
    done_with: set[str] = set()
    for row in rows:
        if row["id"] in own:
            continue
        try:
            verdict = liveness.judge(row, observer)
            done = None if verdict is None else _reap_one(store, row, verdict, observer, detected_by, done_with)
        except Exception as exc:
            # One run that cannot be judged or ended (a row another tool wrote, a constraint it breaks) is
            # logged and skipped: never a stop for the others.
            log.error("runtracker: reaping run %s failed, skipped (%s: %s)", row.get("id"), type(exc).__name__,
                      exc)
            continue
        if done is None:
            continue  # alive, or another reaper, or the owner itself, ended it first
        reaped.append(done)
        if on_reaped is not None:
            try:
                on_reaped(done)
            except Exception as exc:  # a broken callback must not stop the reaping of the others
                log.error("runtracker: handling reaped run %s failed (%s: %s)", done.run_id, type(exc).__name__, exc)
    for path in done_with:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return reaped


def _ownerless_timeouts(rows: Sequence[dict[str, Any]], value: float | None) -> tuple[float, dict[str, float]]:
    """The ownerless timeout (argument, $RUNTRACKER_OWNERLESS_TIMEOUT, 6 h) and the pipelines' own from the
    config file, read only when a run that records no owner is running (reading the file costs more than the
    rest of a start_run's reaping). A config file that cannot be read is logged; the global timeout holds."""
    default = ownerless_timeout_s(value)
    pipelines = {str(row.get("pipeline")) for row in rows if liveness.ownerless(row)}
    if not pipelines or value is not None:
        return default, {}
    from .. import configfile

    try:
        config = configfile.load(schedules=False)
    except Exception as exc:
        log.error("runtracker: the pipeline config file cannot be read (%s); every ownerless run gets the ownerless "
                  "timeout of %g s", exc, default)
        return default, {}
    own = {name: config.ownerless_timeout_s(name) for name in pipelines}
    return default, {name: timeout for name, timeout in own.items() if timeout is not None}


def reap_at_start(store: Store, heartbeat_timeout: float | None = None) -> list[Reaped]:
    """What start_run calls: reap, and say in the log what was found.

    Leftover faulthandler files are swept at the first start_run of a process per database (a directory
    listing: a process that runs many runs need not pay it every time); `reap` and `monitor` sweep every pass.
    """
    directory = heartbeat.crash_dir(store)
    sweep = directory not in STATE.swept_crash_dirs
    STATE.swept_crash_dirs.add(directory)
    found = reap(store, heartbeat_timeout=heartbeat_timeout, detected_by="start_run", sweep=sweep)
    for lost in found:
        log.warning("runtracker: %s", describe(lost))
    return found


def describe(lost: Reaped) -> str:
    """One line for a reaped run, as the CLI prints it."""
    return f"reaped run {lost.run_id} ({lost.pipeline}): {lost.message}"


# How often the monitor looks at the `running` runs between passes (one read of idx_runs_running): a new run's
# owner is waited on (pidwatch) within this of its start, and with alerts, a run's end is seen within this.
TICK_S = 0.25
# After a failing pass (the database away), the next try comes this much later at most.
ERROR_WAIT_S = 5.0


def monitor(store: Store, *, interval: float = DEFAULT_MONITOR_INTERVAL_S, heartbeat_timeout: float | None = None,
            on_reaped: OnReaped | None = None, stop: threading.Event | None = None,
            on_error: Callable[[Exception], None] | None = None, watcher: Watcher | None = None) -> None:
    """Reap every `interval` seconds until `stop` is set, and at once when the owner of a run on this host dies:
    it waits on their processes (`pidwatch`), and looks for new runs to wait on every `TICK_S`. With a `watcher`
    (the alerts) it also looks for ended runs every tick and evaluates schedules every pass. A failing pass
    (database down) is reported through `on_error` (default: logged) and the loop goes on."""
    from ..monitor import pidwatch

    stop = stop or threading.Event()
    deaths = pidwatch.Deaths()
    detected_by = "runtracker monitor"
    timeout = heartbeat_timeout_s(heartbeat_timeout)
    next_pass = 0.0
    try:
        while not stop.is_set():
            try:
                running = Runs(store).running_runs()
                if time.monotonic() >= next_pass:
                    next_pass = time.monotonic() + interval
                    if reap(store, heartbeat_timeout=timeout, detected_by=detected_by, on_reaped=on_reaped,
                            rows=running):
                        running = Runs(store).running_runs()
                    if watcher is not None:
                        watcher.evaluate(running)
                elif watcher is not None:
                    watcher.tick(running)
                dead = deaths.follow(running, liveness.Observer.here(timeout, now_ms()))
                if not dead:
                    wait = min(max(next_pass - time.monotonic(), 0.0), TICK_S)
                    if deaths.watched:
                        dead = deaths.wait(wait)
                    else:
                        stop.wait(wait)
                if dead:
                    # One write per run: reap judges it again (its pid is gone now) and ends it.
                    reap(store, heartbeat_timeout=timeout, detected_by=detected_by, on_reaped=on_reaped,
                         sweep=False, rows=dead)
                    if watcher is not None:
                        watcher.tick()
            except Exception as exc:
                if on_error is not None:
                    on_error(exc)
                else:
                    log.error("runtracker: the monitor's pass failed, trying again in %g s (%s: %s)", interval,
                              type(exc).__name__, exc)
                stop.wait(min(interval, ERROR_WAIT_S))
    finally:
        deaths.close()


# -- ending one lost run ------------------------------------------------------------------------------------
def _reap_one(store: Store, row: dict[str, Any], verdict: liveness.Verdict, observer: liveness.Observer,
              detected_by: str, done_with: set[str]) -> Reaped | None:
    """End a lost run `failure` at its last sign of life; None if someone else ended it first. The process's
    crash file, once attached, goes into `done_with` (removed after the pass: its other runs need it too)."""
    reaped_at = iso(observer.now_ms)
    fault_path = _crash_file_path(store, row)
    fault, last_words = _read_crash_file(fault_path, int(row["id"]))
    message = f"process lost: {verdict.detail}"
    fatal = _fatal_error(fault)
    if fatal:
        message += f"; {fatal}"
    if last_words is not None:  # its own end, which the dying process could not write
        message += f"; its last words: {last_words[0]}"
    message += f"; detected by {detected_by} on {observer.hostname}"
    stack = "\n\n".join(part for part in (last_words[1] if last_words else None, fault) if part) or None
    ending = Ending(
        FAILURE, kind=LOST, message=message, stack=stack, name_step=True, reaped=(reaped_at, verdict.reason),
        summary={"reason": verdict.reason, "detected_by": detected_by, "detected_at": reaped_at,
                 "last_heartbeat_at": row.get("heartbeat_at")},
    )
    report = lifecycle.end_run(store, int(row["id"]), ending)
    if report.result != ENDED:
        return None
    if fault_path is not None:
        done_with.add(fault_path)
    return Reaped(row["id"], row["pipeline"], row.get("hostname"), row.get("pid"), verdict.reason,
                  report.message or message, report.step_in_progress, report.finished_at or reaped_at, reaped_at,
                  detected_by, bool(fault))


# -- the faulthandler file ----------------------------------------------------------------------------------
def _crash_file_path(store: Store, row: dict[str, Any]) -> str | None:
    name = heartbeat.crash_file_name(row.get("hostname"), row.get("pid"), row.get("process_started_at"))
    path = os.path.join(heartbeat.crash_dir(store), name)
    return path if os.path.exists(path) else None


def _read_crash_file(path: str | None, run_id: int) -> tuple[str | None, tuple[str, str] | None]:
    """(faulthandler's traceback, this run's last words as (what, stack)) from a process's crash file."""
    if path is None:
        return None, None
    try:
        with open(path, errors="replace") as f:
            text = f.read(sanitize.STACK_LIMIT * 8)
    except OSError:
        return None, None
    fault: list[str] = []
    words: dict[int, list[str]] = {}
    current: list[str] = fault
    marker = heartbeat.LAST_WORDS.split("{run_id}")[0]
    for line in text.splitlines():
        if line.startswith(marker):
            owner = line[len(marker):].split(" ", 1)[0]
            current = words.setdefault(int(owner) if owner.isdigit() else -1, [])
            current.clear()  # the latest words of a run count
        current.append(line)
    mine = words.get(run_id)
    last_words = None
    if mine:
        what = mine[0].split("): ", 1)[-1]
        last_words = (what, "\n".join(mine[1:]).strip())
    return _current_thread_first("\n".join(fault).strip()) or None, last_words


def _current_thread_first(text: str) -> str:
    """faulthandler lists threads in no useful order: put the one that crashed right after the header, so
    that it survives the stack's truncation. Blocks are separated by blank lines."""
    blocks = text.split("\n\n")
    current = [b for b in blocks if b.startswith("Current thread")]
    if len(current) != 1 or len(blocks) < 3:
        return text
    rest = [b for b in blocks[1:] if b is not current[0]]
    return "\n\n".join([blocks[0], current[0], *rest])


def _fatal_error(fault: str | None) -> str | None:
    """'Fatal Python error: Segmentation fault' from faulthandler's output."""
    if not fault:
        return None
    first = fault.splitlines()[0].strip()
    return first if first.startswith("Fatal Python error") else "faulthandler wrote a traceback"


_CRASH_FILE = r"-(?P<pid>\d+)-(?P<started>\d+)\.txt"  # compiled at first use, not at import


def _sweep_crash_files(store: Store, rows: Sequence[dict[str, Any]]) -> None:
    """Remove faulthandler files of this host's processes that are gone and own no `running` run: they died
    after their runs had ended (e.g. by a signal, which skips the exit hook that removes the file)."""
    directory = heartbeat.crash_dir(store)
    prefix = heartbeat.crash_file_prefix(liveness.hostname())
    try:
        entries = [e.name for e in os.scandir(directory) if e.name.startswith(prefix)]
    except OSError:
        return
    if not entries:
        return
    import psutil

    running_pids = {row.get("pid") for row in rows if row.get("hostname") == liveness.hostname()}
    for name in entries:
        match = re.fullmatch(_CRASH_FILE, name[len(prefix) - 1 :])
        if match is None:
            continue
        pid = int(match["pid"])
        if pid in running_pids or pid == os.getpid():
            continue
        start = liveness.process_start_time(pid) if psutil.pid_exists(pid) else None
        recorded = int(match["started"]) / 1000
        if start is not None and (not recorded or abs(start - recorded) <= liveness.START_TIME_TOLERANCE_S):
            continue  # its owner is alive (a name without a start time: its pid is, which must do)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))
