"""RunTracker: the seed's API (start_run, start_step, end_step, record_error(s), end_run, close) in Python.

Every public method is guarded: whatever goes wrong inside is logged on the `runtracker` logger and the
method returns (None, or False), so tracking never breaks the pipeline. Every call that returns has
committed its write.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import config, heartbeat, hooks, liveness, process, reaper, sanitize
from .guard import guarded, report
from .outcomes import FAILURE, PARTIAL, RUN_OUTCOMES, STEP_OUTCOMES, SUCCESS, normalize_outcome
from .storage import ErrorRow, RunEnd, StepEnd, Store, open_store

if TYPE_CHECKING:
    from .context import Run, Step

log = logging.getLogger("runtracker")

_MEMBER_KEYS = ("member_identifier", "memberIdentifier", "member", "identifier", "id")
_MESSAGE_KEYS = ("error_message", "errorMessage", "message", "error", "msg")
_STACK_KEYS = ("error_stack", "errorStack", "stack", "traceback")


class RunTracker:
    """Records runs of one pipeline into the dashboard database.

    Args:
        pipeline: the pipeline's name, e.g. "nikki".
        db: a path or ``sqlite:///`` / ``postgresql://`` URL; default $RUNTRACKER_DB, else
            ./data/dashboard.sqlite.
        club_slug: stored on every row, as the seed does.
        retention_days: runs older than this are deleted at start_run; 0 keeps everything.
        heartbeat_s: how often the process's open runs get a fresh `heartbeat_at`; default
            $RUNTRACKER_HEARTBEAT_S, else 10 s.
        heartbeat_timeout_s: the reaper at start_run ends other hosts' runs whose heartbeat is older than
            this; default $RUNTRACKER_HEARTBEAT_TIMEOUT_S, else 60 s.
    """

    def __init__(self, pipeline: str, db: object = None, club_slug: str | None = "rondo",
                 retention_days: int | None = None, heartbeat_s: float | None = None,
                 heartbeat_timeout_s: float | None = None) -> None:
        self.pipeline = sanitize.name(pipeline)
        self.club_slug = None if club_slug is None else sanitize.name(club_slug)
        self.retention_days = config.retention_days(retention_days)
        self.heartbeat_s = heartbeat.interval_s(heartbeat_s)
        self.heartbeat_timeout_s = reaper.heartbeat_timeout_s(heartbeat_timeout_s)
        self.run_id: int | None = None
        self._db = db
        self._store: Store | None = None
        self._open: process.OpenRun | None = None
        self._warned_no_run = False

    # -- the seed's API ---------------------------------------------------------------------------------
    @guarded(None)
    def start_run(self) -> int | None:
        """Insert a `running` run (deleting runs past retention first) and return its id.

        Runs of other processes whose owner is gone are reaped first (see `reaper`).
        """
        store = self._get_store()
        hooks.install()
        try:
            reaper.reap_at_start(store, self.heartbeat_timeout_s)
        except Exception as exc:  # reaping is a service to others: it never costs this run
            report("reaping lost runs at start_run", exc)
        if os.environ.get("RUNTRACKER_RUN_ID"):  # started by `runtracker exec`: join its run (see attach.py)
            from . import attach

            attached = attach.attach(store, self.pipeline, self.club_slug, self._db)
            if attached is not None:
                self.run_id, self._open = attached.run_id, attached
                return attached.run_id
        started_at = config.now_iso()
        cutoff = config.retention_cutoff(self.retention_days)
        if self._open is not None:
            log.warning("runtracker: start_run while run %s is still open; it stays open", self.run_id)
        run_id = store.insert_run(
            pipeline=self.pipeline, club_slug=self.club_slug, started_at=started_at, hostname=_hostname(),
            pid=os.getpid(), process_started_at=_process_started_at(), retention_cutoff=cutoff,
            process_key=_process_key(),
        )
        assert run_id is not None  # without a lock_key the insert always returns its row
        self.run_id = run_id
        self._open = process.OpenRun(store, run_id, self.pipeline, self.club_slug, time.monotonic())
        process.register(self._open)
        heartbeat.run_opened(store, self.heartbeat_s)
        return run_id

    @guarded(None)
    def start_step(self, step_name: str) -> int | None:
        run = self._require_run("start_step")
        if run is None:
            return None
        name = sanitize.name(step_name)
        step_id = run.store.insert_step(run_id=run.run_id, club_slug=self.club_slug, step_name=name,
                                        started_at=config.now_iso())
        run.steps[step_id] = process.OpenStep(step_id, name, time.monotonic())
        run.known_steps.add(step_id)
        return step_id

    @guarded(False)
    def end_step(self, step_id: int | None, outcome: object = SUCCESS, created: object = 0, updated: object = 0,
                 skipped: object = 0, failed: object = 0, detail: object = None) -> bool:
        run = self._require_run("end_step")
        if run is None:
            return False
        step = run.steps.get(step_id) if isinstance(step_id, int) else None
        if step is None:
            log.warning("runtracker: end_step on unknown step id %r ignored", step_id)
            return False
        end = StepEnd(
            step.step_id, normalize_outcome(outcome, STEP_OUTCOMES, "step"), config.now_iso(),
            int((time.monotonic() - step.started) * 1000),
            sanitize.count(created, "created"), sanitize.count(updated, "updated"),
            sanitize.count(skipped, "skipped"), sanitize.count(failed, "failed"), sanitize.to_json(detail),
        )
        run.store.end_step(end)
        run.steps.pop(step.step_id, None)
        return True

    @guarded(None)
    def record_error(self, step_name: object = None, step_id: int | None = None, member_identifier: object = None,
                     error_message: object = None, error_stack: object = None) -> None:
        run = self._require_run("record_error")
        if run is not None:
            step_id = _known_step(run, step_id)
            run.store.insert_errors([self._error_row(run, _step_name(step_name), step_id, member_identifier,
                                                     error_message, error_stack, config.now_iso())])

    @guarded(None)
    def record_errors(self, step_name: object, step_id: int | None, errors: object) -> None:
        """Record many errors in one transaction.

        `errors` is a list of dicts (member_identifier / message / stack, seed or snake_case keys),
        exceptions or strings; or an int, recorded as one row saying how many errors there were.
        """
        run = self._require_run("record_errors")
        if run is None or errors is None:
            return
        at = config.now_iso()
        step_id = _known_step(run, step_id)
        name = _step_name(step_name)  # once for every row
        if isinstance(errors, int | float) and not isinstance(errors, bool):
            n = sanitize.count(errors, "error count")
            if n:
                run.store.insert_errors([self._error_row(run, name, step_id, None, f"{n} errors", None, at)])
            return
        if isinstance(errors, str | bytes | dict | BaseException) or not isinstance(errors, Iterable):
            errors = [errors]
        rows = [self._error_row(run, name, step_id, *_error_fields(item), at) for item in errors]
        run.store.insert_errors(rows)

    @guarded(False)
    def end_run(self, outcome: object = SUCCESS, stats: object = None) -> bool:
        """End the open run: outcome ("success" | "partial" | "failure", True/False), stats -> summary_json.

        Step totals are summed from its steps. Steps still open are ended too (`failure` if the run failed,
        else `partial`). A run that already ended (by a crash handler) is not changed; a run the reaper had
        declared lost gets this outcome after all, and keeps `reaped_at` / `reap_reason`.
        """
        run = self._require_run("end_run")
        if run is None:
            return False
        outcome = normalize_outcome(outcome, RUN_OUTCOMES, "run")
        if outcome == SUCCESS and run.crashes:
            log.info("runtracker: run %s had %d crash(es) in threads or tasks; recorded as 'partial'",
                        run.run_id, run.crashes)
            outcome = PARTIAL
        summary = sanitize.to_json(stats)
        try:
            ended = _end(run, outcome, summary)
        except Exception:
            run.pending_end = (outcome, summary)  # the exit hook tries once more
            raise
        process.unregister(run)
        self._open = None
        heartbeat.run_closed()
        if not ended:
            log.warning("runtracker: run %s had already ended; end_run(%r) not applied", run.run_id, outcome)
        return ended

    def close(self) -> None:
        """Detach from the database; idempotent. The process's connection stays open for other trackers."""
        self._store = None

    # -- Pythonic forms ----------------------------------------------------------------------------------
    def run(self, stats: dict[str, Any] | None = None) -> Run:
        """``with tracker.run() as run:`` starts a run, ends it `success` (or `partial`), or `failure` on an
        exception, which is recorded as the run's crash and re-raised."""
        from .context import Run

        return Run(self, stats)

    def step(self, name: str) -> Step:
        """``with tracker.step("download") as step: step.created += 1``"""
        from .context import Step

        return Step(self, name)

    # -- internals ---------------------------------------------------------------------------------------
    def _get_store(self) -> Store:
        if self._store is None:
            self._store = open_store(self._db)
        return self._store

    def _require_run(self, what: str) -> process.OpenRun | None:
        if self._open is None:
            # Once per tracker: a pipeline whose start_run failed may make thousands of calls.
            level = logging.DEBUG if self._warned_no_run else logging.WARNING
            self._warned_no_run = True
            log.log(level, "runtracker: %s without an open run (start_run failed or was not called); ignored", what)
        return self._open

    def _error_row(self, run: process.OpenRun, step_name: str | None, step_id: object, member: object,
                   message: object, stack: object, at: str) -> ErrorRow:
        """One run_errors row; `step_name` is already clean (`_step_name`). Runs once per row of record_errors,
        hence the inlined None checks."""
        return (
            run.run_id, step_id, self.club_slug, step_name,  # type: ignore[return-value]
            None if member is None else sanitize.text(member, sanitize.NAME_LIMIT),
            sanitize.text("(no message)" if message is None else message, sanitize.MESSAGE_LIMIT),
            None if stack is None else sanitize.text(stack, sanitize.STACK_LIMIT), at,
        )

    def _end_with_exception(self, exc: BaseException) -> None:
        """A `with` block or decorated function ended in an exception: the run's crash, recorded once."""
        run = self._open
        if run is None:
            return
        try:
            code = None
            if isinstance(exc, SystemExit):
                code = hooks._exit_status(exc.code)
                if code == 0:
                    self.end_run(SUCCESS)
                    return
            kind = "keyboard_interrupt" if isinstance(exc, KeyboardInterrupt) else (
                "exit" if code is not None else "exception")
            message, stack = process.format_exception(exc)
            at = config.now_iso()
            end, steps = process.crash_end(run, kind, message, at, exit_code=code)
            errors = [process.crash_error_row(run, message, stack, at)]
            if not run.store.end_run(end, steps, errors):
                run.store.end_reaped_run(end, steps, errors)  # the owner's account wins over the reaper's
        except Exception as error:
            report("recording the run's exception", error)
            return  # the run stays registered: the exit hook will still end it
        process.unregister(run)
        self._open = None
        heartbeat.run_closed()


def _end(run: process.OpenRun, outcome: str, summary: str | None) -> bool:
    at = config.now_iso()
    now = time.monotonic()
    step_outcome = FAILURE if outcome == FAILURE else PARTIAL
    steps = [
        StepEnd(s.step_id, step_outcome, at, int((now - s.started) * 1000),
                detail_json='{"unfinished": true}')
        for s in run.steps.values()
    ]
    end = RunEnd(run.run_id, outcome, at, int((now - run.started) * 1000), summary)
    if run.store.end_run(end, steps):
        return True
    # Not running any more. If the reaper had declared it lost (this process looked dead to it: a partitioned
    # host, a heartbeat that could not be written), the owner knows better: its outcome wins.
    if run.store.end_reaped_run(end, steps):
        log.warning("runtracker: run %s had been declared lost by the reaper; end_run(%r) applied, the reaper's "
                    "verdict kept in reaped_at/reap_reason", run.run_id, outcome)
        return True
    return False


def retry_pending_end(run: process.OpenRun) -> bool:
    """At exit: apply an end_run whose write had failed. True if the run is now ended."""
    if run.pending_end is None:
        return False
    try:
        _end(run, *run.pending_end)
    except Exception as exc:
        report("retrying end_run at exit", exc)
        return False
    process.unregister(run)
    return True


def _known_step(run: process.OpenRun, step_id: object) -> int | None:
    """The step id if it is one of this run's steps; an unknown id would break the foreign key, so the
    error is kept and the link dropped."""
    if step_id is None or step_id in run.known_steps:
        return step_id  # type: ignore[return-value]
    log.warning("runtracker: error recorded against unknown step id %r; stored without the step link", step_id)
    return None


def _step_name(step_name: object) -> str | None:
    return None if step_name is None else sanitize.name(step_name)


def _error_fields(item: object) -> tuple[object, object, object]:
    """(member_identifier, message, stack) of one entry of an error list."""
    if isinstance(item, BaseException):
        stack = "".join(traceback.format_exception(type(item), item, item.__traceback__))
        return None, f"{type(item).__name__}: {item}", stack
    if isinstance(item, dict):
        return _first(item, _MEMBER_KEYS), _first(item, _MESSAGE_KEYS), _first(item, _STACK_KEYS)
    return None, item, None


def _first(item: dict[Any, Any], keys: tuple[str, ...]) -> object:
    """The first of `keys` that `item` holds a non-None value for (a plain loop: this runs per error row)."""
    for key in keys:
        value = item.get(key)
        if value is not None:
            return value
    return None


_PROCESS_START: tuple[int, float | None] | None = None


def _hostname() -> str:
    return liveness.hostname()  # $RUNTRACKER_HOSTNAME, else the OS's name


def _process_key() -> str | None:
    try:
        return liveness.process_key()
    except Exception as exc:
        report("reading the process identity", exc)
        return None


def _process_started_at() -> float | None:
    """This process's start time, so that a reaper can tell it from a later process with the same pid."""
    global _PROCESS_START
    pid = os.getpid()
    if _PROCESS_START is None or _PROCESS_START[0] != pid:
        try:
            from .liveness import process_start_time

            _PROCESS_START = (pid, process_start_time(pid))
        except Exception as exc:
            report("reading the process start time", exc)
            _PROCESS_START = (pid, None)
    return _PROCESS_START[1]
