"""The reaper: ends `running` runs whose owning process is gone (SIGKILL, OOM killer, os._exit, segfault, power
loss, a lost host), which no in-process hook can see.

`reap(store)` looks at the `running` runs (one probe of `idx_runs_running`), judges each owner
(`liveness.judge`: same host by pid at once, another host by heartbeat age) and ends each lost run `failure`,
with `finished_at` at its last sign of life (its last heartbeat, or a later step start/end or error: the true
end lies between that and the detection), `duration_ms`, step totals, its open steps ended `failure`, a
`crash` error row saying the process was lost, how it was detected and which step was in progress (with the
faulthandler traceback of a fatal signal when there is one), and `reaped_at` / `reap_reason` on the run.

It runs at every `start_run` (never touching the caller's own open runs), from `runtracker reap`, and as the
loop of `runtracker monitor` (`monitor`, with a callback per reaped run for the alerts to come).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import heartbeat, liveness, process, sanitize
from .config import iso, parse_iso
from .outcomes import FAILURE
from .storage import ErrorRow, RunEnd, StepEnd, Store

log = logging.getLogger("runtracker")

HEARTBEAT_TIMEOUT_ENV = "RUNTRACKER_HEARTBEAT_TIMEOUT_S"
DEFAULT_HEARTBEAT_TIMEOUT_S = 60.0
DEFAULT_MONITOR_INTERVAL_S = 5.0
# The `kind` in a reaped run's summary_json, next to the in-process kinds (`signal`, `exit`, ...).
LOST = "lost"


def heartbeat_timeout_s(value: object = None) -> float:
    """How old another host's heartbeat may get before its run is lost: argument, else
    $RUNTRACKER_HEARTBEAT_TIMEOUT_S, else 60 s."""
    return heartbeat._positive(value, HEARTBEAT_TIMEOUT_ENV, DEFAULT_HEARTBEAT_TIMEOUT_S)


@dataclass(frozen=True)
class Reaped:
    """One run the reaper ended."""

    run_id: int
    pipeline: str
    hostname: str | None
    pid: int | None
    reason: str  # liveness.PID_GONE, PID_REUSED or HEARTBEAT_TIMEOUT
    message: str  # the crash row's message
    step_in_progress: str | None
    finished_at: str  # the run's last sign of life
    reaped_at: str
    detected_by: str
    traceback: bool  # a faulthandler traceback was attached


OnReaped = Callable[[Reaped], None]


def reap(store: Store, *, heartbeat_timeout: float | None = None, detected_by: str = "runtracker reap",
         on_reaped: OnReaped | None = None, sweep: bool = True) -> list[Reaped]:
    """End every `running` run of `store` whose owner is gone; returns what it ended. Raises on database errors.

    The runs this process has open itself are never judged. `sweep` also removes faulthandler files left by
    this host's dead processes that own no `running` run (see `_sweep_crash_files`).
    """
    rows = store.running_runs()
    if sweep:
        _sweep_crash_files(store, rows)
    if not rows:
        return []
    now = datetime.now(UTC)
    observer = liveness.Observer.here(heartbeat_timeout_s(heartbeat_timeout), now)
    own = {run.run_id for run in process.open_runs() if run.store is store}
    reaped: list[Reaped] = []
    for row in rows:
        if row["id"] in own:
            continue
        verdict = liveness.judge(row, observer)
        if verdict is None:
            continue
        done = _reap_one(store, row, verdict, observer, detected_by)
        if done is None:
            continue  # another reaper, or the owner itself, ended it first
        reaped.append(done)
        if on_reaped is not None:
            try:
                on_reaped(done)
            except Exception as exc:  # a broken callback must not stop the reaping of the others
                log.error("runtracker: handling reaped run %s failed (%s: %s)", done.run_id, type(exc).__name__, exc)
    return reaped


_swept: set[tuple[int, str]] = set()


def reap_at_start(store: Store, heartbeat_timeout: float | None = None) -> list[Reaped]:
    """What start_run calls: reap, and say in the log what was found.

    Leftover faulthandler files are swept at the first start_run of a process per database (a directory
    listing: a process that runs many runs need not pay it every time); `reap` and `monitor` sweep every pass.
    """
    key = (os.getpid(), heartbeat.crash_dir(store))
    sweep = key not in _swept
    _swept.add(key)
    found = reap(store, heartbeat_timeout=heartbeat_timeout, detected_by="start_run", sweep=sweep)
    for lost in found:
        log.warning("runtracker: %s", describe(lost))
    return found


def describe(lost: Reaped) -> str:
    """One line for a reaped run, as the CLI prints it."""
    return f"reaped run {lost.run_id} ({lost.pipeline}): {lost.message}"


def monitor(store: Store, *, interval: float = DEFAULT_MONITOR_INTERVAL_S, heartbeat_timeout: float | None = None,
            on_reaped: OnReaped | None = None, stop: threading.Event | None = None,
            on_error: Callable[[Exception], None] | None = None) -> None:
    """Reap every `interval` seconds until `stop` is set. A failing pass (database down) is reported through
    `on_error` (default: logged) and the loop goes on."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            reap(store, heartbeat_timeout=heartbeat_timeout, detected_by="runtracker monitor", on_reaped=on_reaped)
        except Exception as exc:
            if on_error is not None:
                on_error(exc)
            else:
                log.error("runtracker: reaping failed, trying again in %g s (%s: %s)", interval,
                          type(exc).__name__, exc)
        stop.wait(interval)


# -- ending one lost run ------------------------------------------------------------------------------------
def _reap_one(store: Store, row: dict[str, Any], verdict: liveness.Verdict, observer: liveness.Observer,
              detected_by: str) -> Reaped | None:
    reaped_at = iso(observer.now)
    fault_path = _crash_file_path(store, row)
    fault = _read_fault(fault_path)
    result: dict[str, Any] = {}

    def build(facts: dict[str, Any]) -> tuple[RunEnd, list[StepEnd], list[ErrorRow]]:
        # Called inside the reaper's transaction, after it has claimed the still-running row.
        end, steps, errors, message, step = lost_end(facts, verdict, observer.hostname, detected_by, reaped_at,
                                                    fault)
        result.update(message=message, step=step, finished_at=end.finished_at)
        return end, steps, errors

    if not store.reap_run(row["id"], reaped_at, verdict.reason, build):
        return None
    if fault_path is not None:
        with contextlib.suppress(OSError):
            os.unlink(fault_path)
    return Reaped(row["id"], row["pipeline"], row.get("hostname"), row.get("pid"), verdict.reason,
                  result["message"], result["step"], result["finished_at"], reaped_at, detected_by, bool(fault))


def lost_end(facts: dict[str, Any], verdict: liveness.Verdict, observer_host: str, detected_by: str,
             reaped_at: str, fault: str | None
             ) -> tuple[RunEnd, list[StepEnd], list[ErrorRow], str, str | None]:
    """The `failure` end of a lost run, from what the database holds about it (`Store.reap_run`'s facts)."""
    run = facts["run"]
    open_steps = facts["open_steps"]
    last = _last_sign_of_life(run, facts.get("last_activity"))
    step = open_steps[-1] if open_steps else None
    message = f"process lost: {verdict.detail}"
    fatal = _fatal_error(fault)
    if fatal:
        message += f"; {fatal}"
    if step is not None:
        message += f"; step in progress: {step['step_name']}"
    message += f"; detected by {detected_by} on {observer_host}"
    summary = process.crash_summary(LOST, message, step["step_name"] if step else None)
    summary.update(reason=verdict.reason, detected_by=detected_by, detected_at=reaped_at,
                   last_heartbeat_at=run.get("heartbeat_at"))
    steps = [
        StepEnd(s["id"], FAILURE, max(last, s["started_at"]), _ms(s["started_at"], last),
                detail_json=sanitize.to_json({"crash": LOST}))
        for s in open_steps
    ]
    end = RunEnd(run["id"], FAILURE, last, _ms(run["started_at"], last), sanitize.to_json(summary))
    error = process.crash_row(run["id"], step["id"] if step else None, run.get("club_slug"), message, fault,
                              reaped_at)
    return end, steps, [error], message, step["step_name"] if step else None


def _last_sign_of_life(run: dict[str, Any], activity: str | None) -> str:
    """The latest moment the owner is known to have been alive: heartbeat, step start/end, error."""
    moments = [m for m in (run.get("heartbeat_at"), activity, run["started_at"]) if m]
    valid = []
    for moment in moments:
        try:
            valid.append((parse_iso(str(moment)), str(moment)))
        except ValueError:
            continue
    return max(valid)[1] if valid else str(run["started_at"])


# duration_ms is an INTEGER column (32 bits on PostgreSQL): a run found weeks after its host vanished must fit.
_MAX_MS = 2**31 - 1


def _ms(start: str, end: str) -> int:
    try:
        return min(_MAX_MS, max(0, int((parse_iso(end) - parse_iso(start)).total_seconds() * 1000)))
    except ValueError:
        return 0


# -- the faulthandler file ----------------------------------------------------------------------------------
def _crash_file_path(store: Store, row: dict[str, Any]) -> str | None:
    name = heartbeat.crash_file_name(row.get("hostname"), row.get("pid"), row.get("process_started_at"))
    path = os.path.join(heartbeat.crash_dir(store), name)
    return path if os.path.exists(path) else None


def _read_fault(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, errors="replace") as f:
            text = f.read(sanitize.STACK_LIMIT * 4).strip()
    except OSError:
        return None
    return _current_thread_first(text) or None


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


_CRASH_FILE = re.compile(r"-(?P<pid>\d+)-(?P<started>\d+)\.txt")


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
        match = _CRASH_FILE.fullmatch(name[len(prefix) - 1 :])
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
