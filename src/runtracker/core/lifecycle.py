"""The run lifecycle: `open_run` is the one way a run opens, `end_run` the one way it ends, whoever ends it, and
`record_errors` the one way errors are recorded (the rule of which step an error belongs to, written once).

Openers: `RunTracker.start_run`, `runtracker exec` (with its lock), and a Python child of `runtracker exec`
joining the wrapper's run (`attach_to`). Enders: the owner's `end_run`, a `with` block's exception, the crash
hooks, the exit hook, the exec wrapper, and the reaper. Each describes how the run ended as an `Ending`;
`end_run` turns it into one write (`Runs.end_run`), built from what the database holds about the run at that
moment: its start, the steps still open (the one builder of step ends, `_step_ends`), the step in progress.
So every ender writes the same shape, and:

- `duration_ms` is always exactly `finished_at − started_at` (both read from the same clock, as text);
- a step end the pipeline was told is written is never rewritten: only steps still open are ended;
- an end that could not be written (a lock held past the busy timeout) stays the run's `pending` end: the
  next end of this process — the exit hook at the latest — writes it instead of a guess.
"""

from __future__ import annotations

import logging
import threading

from ..base import redact, sanitize
from ..base.clock import iso, later, ms_between, now_ms, to_ms
from ..base.guard import report
from ..base.outcomes import CRASH_STEP, FAILURE, NO_MESSAGE, NO_STEP, PARTIAL, RUNNING
from ..base.records import Record
from ..storage import ALREADY_ENDED, OVERRODE_REAPER, ErrorRow, RunEnd, RunFacts, Runs, StepEnd, Store
from . import attach, crashfile, logring
from .ending import (
    END_ESTIMATED,
    END_OBSERVED,
    EXIT,
    FROM_ACTIVITY,
    FROM_HEARTBEAT,
    FROM_SEEN_ALIVE,
    FROM_START,
    Ending,
    format_exception,
)
from .state import STATE, OpenRun, OpenStep

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    # An error to record: (step_name, step_id, member_identifier, message, stack); see `record_errors`.
    ErrorIn = tuple[str | None, int | None, object, object, object]

log = logging.getLogger("runtracker")


class EndReport(Record):
    """What `end_run` did (`result`: storage's ENDED, OVERRODE_REAPER or ALREADY_ENDED) and what it wrote."""

    __slots__ = ("result", "finished_at", "message", "step_in_progress", "end")

    def __init__(self, result: str, finished_at: str | None = None, message: str | None = None,
                 step_in_progress: str | None = None, end: str | None = None) -> None:
        self.result = result
        self.finished_at = finished_at
        self.message = message  # the crash row's message
        self.step_in_progress = step_in_progress
        self.end = end  # a lost run's: END_OBSERVED or END_ESTIMATED (see `lost_run_end`)


# A death a monitor saw at most this long after it last knew the process alive counts as observed: it was
# waiting on the process (one wait lasts monitor.loop.TICK_S), so it saw the death as it happened, and the run
# ends then. Seen later (the monitor was busy, or the database away), the death lies somewhere in between: the
# end is estimated, from the last moment it was known alive.
OBSERVED_WITHIN_MS = 1000


# -- opening ------------------------------------------------------------------------------------------------
def open_run(store: Store, *, pipeline: str, club_slug: str | None, started_ms: int, heartbeat_s: float,
             retention_cutoff: str | None = None, lock_key: str | None = None,
             attach_to: int | None = None, keep_unwritten: bool = False,
             started_by: str | None = None) -> OpenRun | None:
    """Open a run and make it this process's: registered for the crash hooks, beaten for by the heartbeat.

    A new `running` row (after deleting runs past retention), started at `started_ms` — the moment the caller
    was asked, whatever the database open or a lock then cost. With `lock_key` (`runtracker exec --lock`):
    None if a running run holds the lock. With `attach_to` (a Python child of `runtracker exec`): the
    wrapper's run, joined if it is still running and of this pipeline; else a new run as usual.
    `keep_unwritten`: if the row cannot be written now (the database locked past the busy timeout), the run
    is opened all the same, without an id yet: `ensure_written` writes it, with this start, at its next call
    that can (the exit hook at the latest). `started_by`: who asked for the run (the dashboard's Start button).
    """
    started_at = iso(started_ms)
    redact.refresh()  # the environment's secrets as they are now: a pipeline may have set one since its last run
    row = Runs(store).get_run(attach_to) if attach_to is not None else None
    if row is not None and row["outcome"] == RUNNING and row["pipeline"] == pipeline:
        run = OpenRun(store, int(row["id"]), pipeline, club_slug, str(row["started_at"]), attached=True)
    else:
        run = OpenRun(store, None, pipeline, club_slug, started_at)
        try:
            run_id = _insert(run, retention_cutoff=retention_cutoff, lock_key=lock_key, started_by=started_by)
        except Exception as exc:
            if not keep_unwritten:
                raise
            log.warning("runtracker: the start of the run could not be written now (%s: %s); it is written, with "
                        "its real start time, by the next call that can", type(exc).__name__, exc)
        else:
            if run_id is None:
                return None  # the lock is held
    STATE.register(run)
    STATE.heartbeat.run_opened(store, heartbeat_s, STATE.identity())
    return run


def _insert(run: OpenRun, *, retention_cutoff: str | None = None, lock_key: str | None = None,
            run_id: int | None = None, started_by: str | None = None) -> int | None:
    """Write the run's row into the file its store writes to now: its id (kept on the run), or None."""
    identity = STATE.identity()
    generation = run.store.generation
    written = Runs(run.store).insert_run(
        pipeline=run.pipeline, club_slug=run.club_slug, started_at=run.started_at, hostname=identity.hostname,
        pid=identity.pid, process_started_at=identity.process_started_at, process_key=identity.process_key,
        retention_cutoff=retention_cutoff, lock_key=lock_key, run_id=run_id, started_by=started_by,
        start_key=run.start_key,
    )
    if written is not None:
        # Only once written: a rewrite into a replaced file that failed is tried again by the next call.
        run.written(written, generation)
    return written


def ensure_written(run: OpenRun, followed: str | None = None) -> int:
    """Before any write for an open run of this process: make sure the run is in the database its store
    writes to. Raises when it cannot be written (yet).

    - Its start could not be written at start_run: write it now, with its real start time.
    - The SQLite file was deleted or replaced since (noticed by one stat per call): the rest of the run is
      recorded in the file now at that path. The run is written there again — under the same id when it is
      free, with its steps still open — with an error row saying what happened; what it recorded before
      stayed with the old file.
    """
    store = run.store
    what = followed or store.follow_file() or "replaced"  # `followed`: the caller already looked
    old_id = run.run_id
    if old_id is None:
        return _written(_insert(run))
    if run.attached or run.generation == store.generation:
        return old_id  # (an attached run is the wrapper's: the wrapper writes it again when it ends it)
    new_id = _written(_insert(run, run_id=old_id) or _insert(run))
    for step in list(run.steps.values()):
        if Runs(store).insert_step(run_id=new_id, club_slug=run.club_slug, step_name=step.name,
                                   started_at=iso(step.started_ms), step_id=step.step_id) is None:
            run.step_ended(step.step_id)  # its id is taken in that file: its end_step is refused with a warning
    message = (f"the database file {getattr(store, 'path', store.url)} was {what} while this run "
               f"was open (as run {old_id}); what it recorded before {iso(now_ms())} stayed with the old file")
    Runs(store).insert_errors([(new_id, None, run.club_slug, NO_STEP, None,
                                sanitize.text(message, sanitize.MESSAGE_LIMIT), None, iso(now_ms()))])
    log.warning("runtracker: %s; the rest of it is recorded in the file now at that path, as run %s", message, new_id)
    return new_id


def _written(run_id: int | None) -> int:
    if run_id is None:  # only an insert with a lock_key or an id of its own gives none
        raise RuntimeError("the run could not be written")
    return run_id


# -- steps ----------------------------------------------------------------------------------------------------
def start_step(run: OpenRun, name: str, club_slug: str | None) -> int | None:
    """Add a step to an open run (written): its id, or None (with a warning) if the run has ended."""
    step_id, started_ms = (None, 0) if run.ended else add_step(run.store, _written(run.run_id), name, club_slug)
    if step_id is None:
        log.warning("runtracker: start_step(%r) after run %s had ended; not recorded", name, run.run_id)
        return None
    run.step_started(OpenStep(step_id, name, started_ms))
    return step_id


def end_step(run: OpenRun, step: OpenStep, outcome: str, created: int, updated: int, skipped: int, failed: int,
             detail_json: str | None) -> bool:
    """The owner's end of one of its run's steps; False (with a warning) if an end of the run closed it first."""
    ended = write_step_end(run.store, _written(run.run_id), step.step_id, step.started_ms, outcome, created,
                           updated, skipped, failed, detail_json)
    run.step_ended(step.step_id, problem=ended and (outcome in (FAILURE, PARTIAL) or bool(failed)))
    if not ended:
        log.warning("runtracker: step %s had already ended (its run ended first); end_step not applied",
                    step.step_id)
        return False
    return True


def add_step(store: Store, run_id: int, name: str, club_slug: str | None) -> tuple[int | None, int]:
    """The write of a new step, started now: (its id, or None if the run has ended; its start in ms)."""
    started_ms = now_ms()
    return Runs(store).insert_step(run_id=run_id, club_slug=club_slug, step_name=name, started_at=iso(started_ms)), \
        started_ms


def write_step_end(store: Store, run_id: int, step_id: int, started_ms: int, outcome: str, created: int,
                   updated: int, skipped: int, failed: int, detail_json: str | None) -> bool:
    """The write of a step's end by its run's owner, now; False if it had ended already."""
    finished_ms = max(now_ms(), started_ms)  # a clock stepped back never gives a negative duration
    end = StepEnd(step_id, outcome, iso(finished_ms), finished_ms - started_ms, created, updated, skipped, failed,
                  detail_json)
    return Runs(store).end_step(run_id, end)


# -- errors ---------------------------------------------------------------------------------------------------
def record_errors(store: Store, run_id: int, club_slug: str | None, errors: Iterable[ErrorIn],
                  steps: Mapping[int, str], in_progress: Callable[[], str | None], *,
                  run: OpenRun | None = None) -> int:
    """Record errors on a run, in one transaction: the one way, for the Python API and the ingest API alike.
    Returns how many were recorded.

    Each error is (step_name, step_id, member_identifier, message, stack), its step name already clean
    (`sanitize.name`) and its step id one of the run's, or None. It is stored under the step it names; else the
    step given by its id (`steps`: the run's steps, id -> name); else the step in progress (`in_progress()`,
    read once, only when an error needs it); else NO_STEP, an error of the run as a whole: `step_name` is NOT
    NULL in the original tool's schema, as in ours (docs/original-tool.md). `run`: this process's open run, which
    counts them as problems (`with tracker.run()` then ends `partial`).
    """
    at = iso(now_ms())
    current: list[str] = []
    rows = []
    for step_name, step_id, member, message, stack in errors:
        if step_name is None:
            if step_id is not None and step_id in steps:
                step_name = steps[step_id]
            else:
                if not current:
                    current.append(in_progress() or NO_STEP)
                step_name = current[0]
        rows.append(error_row(run_id, club_slug, step_name, step_id, member, message, stack, at))
    Runs(store).insert_errors(rows)
    if run is not None:
        run.errors_recorded(len(rows))
    return len(rows)


def error_row(run_id: int, club_slug: str | None, step_name: str, step_id: int | None, member: object,
              message: object, stack: object, at: str) -> ErrorRow:
    """One run_errors row of a recorded error. Runs once per row of record_errors, hence the inlined None checks.
    The message is NOT NULL in the original tool's schema, as ours."""
    return (
        run_id, step_id, club_slug, step_name,
        None if member is None else sanitize.plain_text(member, sanitize.NAME_LIMIT),  # an id: not redacted
        sanitize.text(NO_MESSAGE if message is None else message, sanitize.MESSAGE_LIMIT),
        None if stack is None else sanitize.text(stack, sanitize.STACK_LIMIT), at,
    )


# -- runs owned by another process: the ingest API ------------------------------------------------------------
def open_remote_run(store: Store, *, pipeline: str, club_slug: str | None, started_ms: int, owner: str,
                    started_by: str, retention_cutoff: str | None = None) -> int:
    """Open a run whose owner is not this process but a client of the ingest API (docs/ingest.md).

    Nothing of this process goes into the run, and it is not registered in the process state: the server's
    exit, crash hooks and heartbeat never end or beat for it. It records no host, pid or heartbeat, so the
    reaper judges it as a run that records no owner (the ownerless timeout) until its client's first
    heartbeat (`Runs.touch_heartbeat`), and from then on as another host's run, by the heartbeat's age.
    `owner` (in `process_key`) names the API key that opened it: the one that may write to it and end it.
    """
    return _written(Runs(store).insert_run(
        pipeline=pipeline, club_slug=club_slug, started_at=iso(started_ms), hostname=None, pid=None,
        process_started_at=None, process_key=owner, retention_cutoff=retention_cutoff, started_by=started_by,
        beating=False,
    ))


# -- ending -------------------------------------------------------------------------------------------------
def end_run(store: Store, run_id: int | None, ending: Ending, *, run: OpenRun | None = None,
            crash_write: bool = False) -> EndReport:
    """End a run: the one way, whoever ends it. Raises on a database error (the caller's guard logs it).

    `run`: this process's open run, when its own process ends it (the owner's account wins over a reaper's
    verdict); it is unregistered once its end is written, and keeps `ending` as its pending end if the write
    fails. A run with a pending end is ended with that one instead (the end its owner asked for).
    `crash_write`: written by a crash handler (longer waits; see `Store.crash_transaction`).
    """
    if run is not None:
        if run.pending is not None:
            ending = run.pending
        ending = ending.with_log_lines(lambda: _log_lines(run))  # before the write: kept with the end if it waits
        try:
            ensure_written(run)
        except BaseException:
            run.end_deferred(ending)
            raise
        run_id = run.run_id  # written now
    if run is not None and run.attached:
        return _end_attached(run, ending, crash_write)
    report_: dict[str, Any] = {}

    def build(facts: RunFacts) -> RunEnd:
        end, report_["message"], report_["step"], report_["end"] = _build(facts, ending)
        report_["finished_at"] = end.finished_at
        if run is not None and run.log_rows:  # ERROR log records not written yet: with the end, before its crash
            end.errors = [*log_error_rows(run, int(facts.run["id"])), *end.errors]
        return end

    assert run_id is not None
    try:
        result = Runs(store).end_run(run_id, build, by_owner=ending.reaped is None, crash=crash_write)
    except BaseException:
        if run is not None:
            run.end_deferred(ending)
        raise
    if run is not None:
        run.end_written()
        STATE.unregister(run)
        run.troubles.flush(f"run {run_id}")
        if result == OVERRODE_REAPER:
            log.warning("runtracker: run %s had been declared lost by the reaper; its own end (%s) applied, the "
                        "reaper's verdict kept in reaped_at/reap_reason", run_id, ending.outcome)
        elif result == ALREADY_ENDED and ending.kind is None:
            log.warning("runtracker: run %s had already ended; end_run(%r) not applied", run_id, ending.outcome)
    return EndReport(result, report_.get("finished_at"), report_.get("message"), report_.get("step"),
                     report_.get("end"))


def write_pending(store: Store) -> None:
    """Write the ends this process's owners asked for on `store` that could not be written then (the database
    was away): at the next start_run that can, so that such a run does not stay `running` until the process
    exits, and ends when its end was asked. Never raises: if the database still fails, they stay pending (the
    exit hook writes them at the latest)."""
    for run in STATE.open_runs():
        if run.pending is None or run.ended or run.store is not store:
            continue
        try:
            end_run(store, run.run_id, run.pending, run=run)
        except Exception as exc:
            run.troubles.report("writing an end asked while the database was away", exc)
            return  # the database still fails: the others wait for the next call too


def end_open_runs(runs: list[OpenRun], ending: Ending, what: str) -> None:
    """A crash path: end each of these runs (each with its pending end, if it has one), each on its own, so one
    database that fails does not cost the others."""
    for run in runs:
        try:
            end_run(run.store, run.run_id, ending, run=run, crash_write=True)
        except Exception as exc:
            report(f"recording {what}", exc)
            _leave_last_words(run, exc)
        finally:
            STATE.unregister(run)  # ended, or left to the reaper: never written twice by this process
            run.troubles.flush(f"run {run.run_id}")


def _leave_last_words(run: OpenRun, error: BaseException) -> None:
    """The end of a run could not be written by its dying process: leave it in the process's crash file, where
    the reaper finds it when it ends the run (a run whose start was never written has no one to find it)."""
    if run.run_id is None:
        return
    what, stack = crashfile.words_of(run.pending or Ending(FAILURE))
    try:
        STATE.crash_file.last_words(run.store, STATE.identity(), run.run_id, error, what, stack)
    except Exception as exc:
        report("leaving the run's last words in the crash file", exc)


def _log_lines(run: OpenRun) -> str | None:
    """The run's last log lines, as its crash row gets them now (None: it keeps none, or there are none)."""
    return STATE.log_ring.lines(run.log_since, run.log_lines)


def runs_of_dying_thread(thread: threading.Thread) -> list[OpenRun]:
    """The open runs an uncaught exception in `thread` ends: its own, and those of threads that are gone."""
    return [run for run in STATE.open_runs() if run.thread is thread or not run.thread.is_alive()]


def _build(facts: RunFacts, ending: Ending) -> tuple[RunEnd, str | None, str | None, str | None]:
    run = facts.run
    started_at = str(run["started_at"])
    how_ended: dict[str, Any] = {}
    if ending.reaped is not None:
        finished_at, how_ended = lost_run_end(run, facts.last_activity(), ending.death)
        duration_ms = ms_between(started_at, finished_at)
    else:
        # The moment of the write, taken under the run's lock: later than every step start, step end and error
        # already committed on the run (each took its time before its own commit), so no step of the run lies
        # after its end. An end its owner asked for (`asked_ms`) ends when it was asked, however much later it
        # is written (the database was away). A clock stepped back never gives a negative duration.
        started_ms = to_ms(started_at)
        now = facts.now_ms if ending.asked_ms is None else min(facts.now_ms, ending.asked_ms)
        finished_ms = now if started_ms is None else max(now, started_ms)
        finished_at = iso(finished_ms)
        duration_ms = 0 if started_ms is None else finished_ms - started_ms
    step = facts.open_steps[-1] if facts.open_steps else None
    step_name = str(step["step_name"]) if step is not None else None
    message = ending.message
    if message is not None and ending.name_step and step_name is not None:
        message += f"; step in progress: {step_name}"
    detail: dict[str, Any]
    if ending.kind is None:
        summary_json = ending.summary_json if ending.summary is None else sanitize.to_json(ending.summary)
        detail = {"unfinished": True}
    else:
        summary: dict[str, Any] = {"crash": True, "kind": ending.kind, "error": message or ""}
        if step_name is not None:
            summary["step_in_progress"] = step_name
        summary.update(ending.summary or {})
        summary.update(how_ended)
        summary_json = sanitize.to_json(summary)
        detail = {"crash": ending.kind}
    errors: list[ErrorRow] = []
    if message is not None:
        at = ending.reaped[0] if ending.reaped else finished_at
        errors.append(crash_row(int(run["id"]), step["id"] if step is not None else None, run.get("club_slug"),
                                message, ending.stack, at, ending.log_lines))
    end = RunEnd(
        outcome=ending.outcome, finished_at=finished_at, duration_ms=duration_ms,
        summary_json=summary_json, exit_code=ending.exit_code,
        steps=_step_ends(facts.open_steps, FAILURE if ending.outcome == FAILURE else PARTIAL, finished_at, detail),
        errors=errors, reaped=ending.reaped,
        output_tail=sanitize.optional_text(ending.output_tail, sanitize.TAIL_LIMIT),
    )
    return end, message, step_name, how_ended.get("end")


def _step_ends(open_steps: list[dict[str, Any]], outcome: str, at: str, detail: dict[str, Any]) -> list[StepEnd]:
    """The one builder of the ends of steps still open when their run ends."""
    if not open_steps:
        return []
    detail_json = sanitize.to_json(detail)
    ends = []
    for step in open_steps:
        finished_at = later(at, step["started_at"])
        ends.append(StepEnd(int(step["id"]), outcome, finished_at, ms_between(step["started_at"], finished_at),
                            detail_json=detail_json))
    return ends


def crash_row(run_id: int, step_id: int | None, club_slug: str | None, message: str, stack: str | None,
              at: str, log_lines: str | None = None) -> ErrorRow:
    """The `crash` error row a dying run leaves (also what a thread's death adds to a run that goes on). The
    process's last log lines follow the stack in `error_stack`, each part cleaned and capped on its own."""
    stack_text = sanitize.optional_text(stack, sanitize.STACK_LIMIT)
    lines = sanitize.optional_text(log_lines, logring.TEXT_LIMIT)
    return (run_id, step_id, club_slug, CRASH_STEP, None, sanitize.text(message or "crash", sanitize.MESSAGE_LIMIT),
            logring.join_stack(stack_text, lines), at)


def last_sign_of_life(run: dict[str, Any], activity: str | None) -> str:
    """The latest moment the owner is known to have been alive: heartbeat, step start/end, error."""
    return _last_sign(run, activity)[0]


def _last_sign(run: dict[str, Any], activity: str | None) -> tuple[str, str]:
    """The owner's last sign of life in the database, and which it is (FROM_START, FROM_HEARTBEAT, FROM_ACTIVITY)."""
    latest, source = str(run["started_at"]), FROM_START
    for moment, what in ((run.get("heartbeat_at"), FROM_HEARTBEAT), (activity, FROM_ACTIVITY)):
        if moment and later(latest, str(moment)) != latest:
            latest, source = str(moment), what
    return latest, source


def lost_run_end(run: dict[str, Any], activity: str | None,
                 death: tuple[int, int] | None) -> tuple[str, dict[str, Any]]:
    """When a lost run ended, and how that is known: (its finished_at, the summary's fields that say so).

    - Its death seen as it happened (`death`: a monitor waiting on its pidfd was woken by it, within
      OBSERVED_WITHIN_MS of knowing it alive): that moment, `end` END_OBSERVED, and `alive_at`, the moment before
      it that the process was known alive (the death lies between the two).
    - Otherwise nobody saw it die, and the end is estimated (`end` END_ESTIMATED): its last sign of life — the
      last heartbeat, step start or end, or error in the database, or the last moment a monitor knew its
      process alive, whichever is latest — named in `estimated_from`. The death lies between that and its
      detection (`detected_at`; `dead_by` when a monitor saw it dead earlier). The run's duration is then a
      lower bound: a pipeline killed between two heartbeats ran longer than its record says.
    """
    latest, source = _last_sign(run, activity)
    if death is None:
        return latest, {"end": END_ESTIMATED, "estimated_from": source}
    alive_ms, seen_ms = death
    if seen_ms - alive_ms <= OBSERVED_WITHIN_MS:
        # The same host's clock as the owner's: the death is after every sign of life it wrote (`later` only
        # guards against a clock stepped back meanwhile).
        return later(latest, iso(seen_ms)), {"end": END_OBSERVED, "alive_at": iso(alive_ms)}
    if later(latest, iso(alive_ms)) != latest:
        latest, source = iso(alive_ms), FROM_SEEN_ALIVE
    return latest, {"end": END_ESTIMATED, "estimated_from": source, "dead_by": iso(seen_ms)}


def _end_attached(run: OpenRun, ending: Ending, crash_write: bool) -> EndReport:
    """A Python child of `runtracker exec` ends its part: its steps end and its view goes into the run's
    summary; the wrapper ends the run (see `attach`)."""
    exiting = ending.kind == EXIT  # no crash here: the wrapper records the exit status itself

    def build(facts: RunFacts) -> tuple[list[StepEnd], list[ErrorRow], str | None]:
        end, _, _, _ = _build(facts, ending.without_crash_row() if exiting else ending)
        errors = [*log_error_rows(run, int(facts.run["id"])), *end.errors]
        summary = facts.run.get("summary_json")
        if not exiting:
            summary = attach.merge_view(summary, ending.outcome,
                                        ending.summary_json if ending.kind is None else None)
        return list(end.steps), errors, summary

    try:
        written = Runs(run.store).record_child_view(_written(run.run_id), build, crash=crash_write)
    except BaseException:
        run.end_deferred(ending)
        raise
    run.end_written()
    STATE.unregister(run)
    return EndReport("ended" if written else ALREADY_ENDED)


def record_crash_rows(kind: str, exc: BaseException | None, runs: list[OpenRun]) -> None:
    """A thread or task died but the process goes on: a crash row on each of these runs, which can no longer
    end `success`."""
    message, stack = format_exception(exc)
    at = iso(now_ms())
    for run in runs:
        run.thread_crashed()
        step = run.step_in_progress()
        try:
            lines = _log_lines(run)
            Runs(run.store).insert_errors([crash_row(ensure_written(run), step.step_id if step else None,
                                                     run.club_slug, f"{kind}: {message}", stack, at, lines)])
        except Exception as error:
            report(f"recording a crash row ({kind})", error)


def record_log_error(record: logging.LogRecord) -> None:
    """An ERROR log record of the process (`record_log_errors=True`): an error row on the open runs that asked for
    it — the current thread's, else every one — under the step in progress, with the exception's stack if the
    record has one. Called by the log ring's factory, never for runtracker's own records.

    The row is kept on the run and written by its next call (`write_log_rows`) or with its end, never here: the
    logging call may come from a signal handler that interrupted one of our own writes in this very thread, and
    a write then would join that transaction (SQLite) or wait on the connection it holds (PostgreSQL)."""
    runs = [run for run in STATE.open_runs() if run.log_errors and not run.ended]
    if not runs:
        return
    thread = threading.current_thread()
    runs = [run for run in runs if run.thread is thread] or runs
    message = sanitize.text(logring.message_of(record), sanitize.MESSAGE_LIMIT)
    exc_info = record.exc_info
    stack = None
    if exc_info and exc_info[1] is not None:
        stack = sanitize.text(format_exception(exc_info[1])[1] or "", sanitize.STACK_LIMIT) or None
    at = iso(int(record.created * 1000))
    for run in runs:
        if len(run.log_rows) >= MAX_LOG_ROWS:  # the database has been failing all along: keep the first ones
            continue
        step = run.step_in_progress()
        run.log_error_kept((step.step_id if step else None, step.name if step else NO_STEP, message, stack, at))


MAX_LOG_ROWS = 10_000  # ERROR log records a run keeps while they cannot be written


def log_error_rows(run: OpenRun, run_id: int) -> list[ErrorRow]:
    """The run's ERROR log records not written yet, as error rows (they stay on the run until written)."""
    return [(run_id, step_id, run.club_slug, step_name, None, message, stack, at)
            for step_id, step_name, message, stack, at in run.log_rows]


def write_log_rows(run: OpenRun) -> None:
    """Write the run's ERROR log records kept so far (a call of its tracker, outside any logging call). A
    failure is logged once per run, and the rows are tried again at its next call or with its end."""
    rows = log_error_rows(run, ensure_written(run))
    try:
        Runs(run.store).insert_errors(rows)
    except Exception as error:
        run.troubles.report("recording ERROR log records", error)
        return
    run.log_errors_written(len(rows))
