"""The reaper: ends `running` runs whose owning process is gone (SIGKILL, OOM killer, os._exit, segfault, power
loss, a lost host), which no in-process hook can see.

`reap(store)` looks at the `running` runs (one probe of `idx_runs_running`), judges each owner
(`liveness.judge`: same host by pid at once, another host by heartbeat age) and ends each lost run `failure`,
with `finished_at` at the moment its death was seen when a monitor saw it happen (`seen`: its pidfd), else at
its last sign of life (its last heartbeat, or a later step start/end or error: the true end lies between that
and the detection), which the summary says is an estimate, and from what (`lifecycle.lost_run_end`);
`duration_ms`, step totals, its open steps ended `failure`, a
`crash` error row saying the process was lost, how it was detected and which step was in progress (with the
faulthandler traceback of a fatal signal when there is one), and `reaped_at` / `reap_reason` on the run.

It runs at every `start_run` (`reap_at_start`, never touching the caller's own open runs), from `runtracker
reap`, and in the monitor's loop (`runtracker.monitor.loop`: every pass, and at once when a same-host owner
dies). A lost run's traceback and last words come from its process's crash file (`crashfile`).

Every end is a compare-and-set on `outcome = 'running'` inside one transaction (see `Store.reap_run`): two
reapers racing, or a reaper racing the owner's own end_run, never both act. An owner that was alive after all
(a partitioned host) and ends its run later wins: its outcome replaces the reaper's, and `reaped_at` /
`reap_reason` and the crash row keep that the reaper had declared it lost (see `Store.end_reaped_run`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from ..base.clock import iso, now_ms
from ..base.outcomes import FAILURE
from ..base.records import Record
from ..settings.values import heartbeat_timeout_s, ownerless_timeout_s
from ..storage import ENDED, Runs, Store
from . import crashfile, lifecycle, liveness
from .ending import LOST, Ending
from .state import STATE

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger("runtracker")

LOST_PREFIX = "process lost: "  # a lost run's crash row begins so: what follows is the verdict's detail


class Reaped(Record):
    """One run the reaper ended (`fields()` is what `runtracker reap --json` prints)."""

    __slots__ = ("run_id", "pipeline", "hostname", "pid", "reason", "message", "step_in_progress", "finished_at",
                 "end", "reaped_at", "detected_by", "traceback")

    def __init__(self, run_id: int, pipeline: str, hostname: str | None, pid: int | None, reason: str,
                 message: str, step_in_progress: str | None, finished_at: str, end: str | None, reaped_at: str,
                 detected_by: str, traceback: bool) -> None:
        self.run_id = run_id
        self.pipeline = pipeline
        self.hostname = hostname
        self.pid = pid
        self.reason = reason  # liveness.PID_GONE, PID_REUSED or HEARTBEAT_TIMEOUT
        self.message = message  # the crash row's message
        self.step_in_progress = step_in_progress
        self.finished_at = finished_at  # the moment its death was seen, else its last sign of life
        self.end = end  # how finished_at is known: ending.END_OBSERVED or END_ESTIMATED
        self.reaped_at = reaped_at
        self.detected_by = detected_by
        self.traceback = traceback  # a faulthandler traceback was attached


OnReaped = Callable[[Reaped], None]


def reap(store: Store, *, heartbeat_timeout: float | None = None, detected_by: str = "runtracker reap",
         on_reaped: OnReaped | None = None, sweep: bool = True,
         ownerless_timeout: float | None = None, rows: Sequence[dict[str, Any]] | None = None,
         seen: Mapping[int, liveness.Death] | None = None) -> list[Reaped]:
    """End every `running` run of `store` whose owner is gone; returns what it ended. Raises on database errors.

    The runs this process has open itself are never judged. `sweep` also removes faulthandler files left by
    this host's dead processes that own no `running` run (see `crashfile.sweep`). `rows`: judge only these
    runs (rows as `Runs.running_runs` gives them; the monitor's, whose owner it saw die). `seen`: run id -> the
    death of its owner as the monitor saw it (pidfd): that run ends at that moment.
    """
    rows = Runs(store).running_runs() if rows is None else rows
    if sweep:
        crashfile.sweep(store, rows)
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
            done = None if verdict is None else _reap_one(store, row, verdict, observer, detected_by, done_with,
                                                          (seen or {}).get(int(row["id"])))
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
    crashfile.remove(done_with)
    return reaped


def _ownerless_timeouts(rows: Sequence[dict[str, Any]], value: float | None) -> tuple[float, dict[str, float]]:
    """The ownerless timeout (argument, $RUNTRACKER_OWNERLESS_TIMEOUT, 6 h) and the pipelines' own from the
    config file, read only when a run that records no owner is running (reading the file costs more than the
    rest of a start_run's reaping). A config file that cannot be read is logged; the global timeout holds."""
    default = ownerless_timeout_s(value)
    pipelines = {str(row.get("pipeline")) for row in rows if liveness.ownerless(row)}
    if not pipelines or value is not None:
        return default, {}
    from ..settings import configfile

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
    listing: a process that runs many runs need not pay it every time); `runtracker reap` and the monitor sweep
    every pass.
    """
    directory = crashfile.crash_dir(store)
    sweep = directory not in STATE.swept_crash_dirs
    STATE.swept_crash_dirs.add(directory)
    found = reap(store, heartbeat_timeout=heartbeat_timeout, detected_by="start_run", sweep=sweep)
    for lost in found:
        log.warning("runtracker: %s", describe(lost))
    return found


def describe(lost: Reaped) -> str:
    """One line for a reaped run, as the CLI prints it."""
    return f"reaped run {lost.run_id} ({lost.pipeline}): {lost.message}"


# -- ending one lost run ------------------------------------------------------------------------------------
def _reap_one(store: Store, row: dict[str, Any], verdict: liveness.Verdict, observer: liveness.Observer,
              detected_by: str, done_with: set[str], death: liveness.Death | None) -> Reaped | None:
    """End a lost run `failure` when its death was seen (`death`), else at its last sign of life; None if someone
    else ended it first. The process's crash file, once attached, goes into `done_with` (removed after the pass:
    its other runs need it too)."""
    reaped_at = iso(observer.now_ms)
    fault_path = crashfile.find(store, row)
    fault, last_words = crashfile.read(fault_path, int(row["id"]))
    asked = crashfile.asked_end(last_words)
    if asked is not None:
        # Its owner asked for this end and its process could not write it before it exited (the database was
        # away): written as asked, when asked. Not a loss, so not in what the reaper reports (no crash alert).
        if lifecycle.end_run(store, int(row["id"]), asked).result == ENDED:
            log.warning("runtracker: run %s ended %r as its owner asked (its process could not write it and "
                        "left it in its crash file)", row["id"], asked.outcome)
            if fault_path is not None:
                done_with.add(fault_path)
        return None
    message = f"{LOST_PREFIX}{verdict.detail}"
    fatal = crashfile.fatal_error(fault)
    if fatal:
        message += f"; {fatal}"
    if last_words is not None:  # its own end, which the dying process could not write
        message += f"; its last words: {last_words[0]}"
    message += f"; detected by {detected_by} on {observer.hostname}"
    stack = "\n\n".join(part for part in (last_words[1] if last_words else None, fault) if part) or None
    ending = Ending(
        FAILURE, kind=LOST, message=message, stack=stack, name_step=True, reaped=(reaped_at, verdict.reason),
        death=None if death is None else (death.alive_ms, death.seen_ms),
        summary={"reason": verdict.reason, "detected_by": detected_by, "detected_at": reaped_at,
                 "last_heartbeat_at": row.get("heartbeat_at")},
    )
    report = lifecycle.end_run(store, int(row["id"]), ending)
    if report.result != ENDED:
        return None
    if fault_path is not None:
        done_with.add(fault_path)
    return Reaped(row["id"], row["pipeline"], row.get("hostname"), row.get("pid"), verdict.reason,
                  report.message or message, report.step_in_progress, report.finished_at or reaped_at, report.end,
                  reaped_at, detected_by, bool(fault))
