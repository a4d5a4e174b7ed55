"""RunTracker: the seed's API (start_run, start_step, end_step, record_error(s), end_run, close) in Python.

Every public method is guarded: whatever goes wrong inside is logged on the `runtracker` logger and the
method returns (None, or False), so tracking never breaks the pipeline. Every call that returns has
committed its write. Runs open and end through `runtracker.core.lifecycle`, like every other opener and ender.

The machinery of a run (`lifecycle`, and through it the process state, storage, the heartbeat, the hooks,
the reaper) is imported by the methods that use it, not at the top: `import runtracker` — which every
pipeline pays at start-up, whether it tracks in that process or not — stays cheap (bench/process_costs.py),
and the first start_run pays for the rest, once.
"""

from __future__ import annotations

import functools
import logging
import time
import traceback
from collections.abc import Callable, Iterable

from ..base import redact, sanitize
from ..base.clock import now_ms
from ..base.guard import Troubles, guarded, report
from ..base.outcomes import (
    DEFAULT_CLUB_SLUG,
    PARTIAL,
    RUN_OUTCOMES,
    STEP_OUTCOMES,
    SUCCESS,
    normalize_outcome,
)
from ..settings import values
from .context import Run, Step

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from .lifecycle import ErrorIn
    from .state import OpenRun

    F = TypeVar("F", bound=Callable[..., Any])

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
        club_slug: stored on every row, as the seed does; None means the seed's default, "rondo" (the column is
            NOT NULL, as in the original tool's database).
        retention_days: runs older than this are deleted at start_run; 0 keeps everything.
        heartbeat_s: how often the process's open runs get a fresh `heartbeat_at`; default
            $RUNTRACKER_HEARTBEAT_S, else 10 s.
        heartbeat_timeout_s: the reaper at start_run ends other hosts' runs whose heartbeat is older than
            this; default $RUNTRACKER_HEARTBEAT_TIMEOUT_S, else 60 s.
        log_lines: how many of the process's last `logging` records (INFO and above, since the run started) its
            crash row keeps after the traceback; default $RUNTRACKER_LOG_LINES, else 50; 0 keeps none.
        record_log_errors: an ERROR log record during the run becomes one of its error rows; default
            $RUNTRACKER_RECORD_LOG_ERRORS, else off.
    """

    def __init__(self, pipeline: str, db: object = None, club_slug: str | None = "rondo",
                 retention_days: int | None = None, heartbeat_s: float | None = None,
                 heartbeat_timeout_s: float | None = None, log_lines: int | None = None,
                 record_log_errors: bool | None = None) -> None:
        self.pipeline = sanitize.name(pipeline)
        self.club_slug = DEFAULT_CLUB_SLUG if club_slug is None else sanitize.name(club_slug)
        self.retention_days = values.retention_days(retention_days)
        self.heartbeat_s = values.heartbeat_interval_s(heartbeat_s)
        self.heartbeat_timeout_s = values.heartbeat_timeout_s(heartbeat_timeout_s)
        self.log_lines = values.log_lines(log_lines)
        self.record_log_errors = values.record_log_errors(record_log_errors)
        self._run_id: int | None = None  # the last run's id, kept after it ended
        self._troubles = Troubles()  # failures while no run is open
        self._db = db
        self._open: OpenRun | None = None
        self._warned_no_run = False

    # -- the seed's API ---------------------------------------------------------------------------------
    @guarded(None)
    def start_run(self) -> int | None:
        """Insert a `running` run (deleting runs past retention first) and return its id.

        Its `started_at` is the moment of this call. Runs of other processes whose owner is gone are reaped
        first (see `reaper`).
        """
        started_ms, log_since = now_ms(), time.time()
        from . import attach, opening

        if self._open is not None and not self._open.ended and self._open.pending is None:
            log.warning("runtracker: start_run while run %s is still open; it stays open", self.run_id)
            self._open.troubles.flush(f"run {self.run_id}")
        # Started by `runtracker exec`: join its run (see attach.py), else open one of its own.
        run = opening.open_run(pipeline=self.pipeline, club_slug=self.club_slug, started_ms=started_ms, db=self._db,
                               heartbeat_s=self.heartbeat_s, heartbeat_timeout_s=self.heartbeat_timeout_s,
                               retention_days=self.retention_days, attach_to=attach.target(self._db),
                               keep_unwritten=True, log_lines=self.log_lines, log_errors=self.record_log_errors,
                               log_since=log_since)
        assert not isinstance(run, int)  # an OpenRun: not an API key's run
        self._open = run
        return run.run_id  # None while its start is not written yet (see lifecycle.ensure_written)

    @property
    def run_id(self) -> int | None:
        """The open run's id (None until its start is written); after it ended, the last run's."""
        if self._open is not None:
            self._run_id = self._open.run_id
        return self._run_id

    @property
    def troubles(self) -> Troubles:
        """The failures of this tracker's calls during its open run: each kind is logged once, and how many more
        there were is logged when the run ends."""
        return self._open.troubles if self._open is not None else self._troubles

    @guarded(None)
    def start_step(self, step_name: str) -> int | None:
        """Start a step of the open run and return its id; None (with a warning) if the run has ended."""
        run = self._require_run("start_step")
        if run is None:
            return None
        from . import lifecycle

        return lifecycle.start_step(run, sanitize.name(step_name), self.club_slug)

    @guarded(False)
    def end_step(self, step_id: int | None, outcome: object = SUCCESS, created: object = 0, updated: object = 0,
                 skipped: object = 0, failed: object = 0, detail: object = None) -> bool:
        """End a step with its counts (each clamped to 0..sanitize.MAX_COUNT). False, with a warning, for an
        unknown step or one that was already ended (its run crashed meanwhile)."""
        run = self._require_run("end_step")
        if run is None:
            return False
        step = run.steps.get(step_id) if isinstance(step_id, int) else None
        if step is None:
            log.warning("runtracker: end_step on unknown step id %s ignored", redact.shown(step_id))
            return False
        from . import lifecycle

        return lifecycle.end_step(run, step, normalize_outcome(outcome, STEP_OUTCOMES, "step"),
                                  sanitize.count(created, "created"), sanitize.count(updated, "updated"),
                                  sanitize.count(skipped, "skipped"), sanitize.count(failed, "failed"),
                                  sanitize.to_json(detail))

    @guarded(None)
    def record_error(self, step_name: object = None, step_id: int | None = None, member_identifier: object = None,
                     error_message: object = None, error_stack: object = None) -> None:
        """Record one error of the open run: under the step named, else the step given by id, else the step in
        progress, else the run as a whole (`lifecycle.record_errors`)."""
        run = self._require_run("record_error")
        if run is not None:

            step_id = _known_step(run, step_id)
            self._record(run, [(_clean_name(step_name), step_id, member_identifier, error_message, error_stack)])

    @guarded(None)
    def record_errors(self, step_name: object, step_id: int | None, errors: object) -> None:
        """Record many errors in one transaction.

        `errors` is a list of dicts (member_identifier / message / stack, seed or snake_case keys),
        exceptions or strings; or an int, recorded as one row saying how many errors there were.
        """
        run = self._require_run("record_errors")
        if run is None or errors is None:
            return
        step_id = _known_step(run, step_id)
        name = _clean_name(step_name)  # once for every row
        if isinstance(errors, int | float) and not isinstance(errors, bool):
            n = sanitize.count(errors, "error count")
            if n:
                self._record(run, [(name, step_id, None, f"{n} errors", None)])
            return
        if isinstance(errors, str | bytes | dict | BaseException) or not isinstance(errors, Iterable):
            errors = [errors]
        self._record(run, (_error_in(name, step_id, item) for item in errors))

    @guarded(False)
    def end_run(self, outcome: object = SUCCESS, stats: object = None) -> bool:
        """End the open run: outcome ("success" | "partial" | "failure", True/False), stats -> summary_json.

        Step totals are summed from its steps. Steps still open are ended too (`failure` if the run failed,
        else `partial`). A run that already ended (by a crash handler) is not changed; a run the reaper had
        declared lost gets this outcome after all, and keeps `reaped_at` / `reap_reason`. If the end cannot be
        written now (the database locked longer than the busy timeout), it is written by the process's next
        end, at exit at the latest: never replaced by a guess.
        """
        run = self._require_run("end_run", write=False)
        if run is None:
            return False
        outcome = normalize_outcome(outcome, RUN_OUTCOMES, "run")
        if outcome == SUCCESS and run.crashes:
            log.info("runtracker: run %s had %d crash(es) in threads or tasks; recorded as 'partial'",
                     run.run_id, run.crashes)
            outcome = PARTIAL
        from ..storage import ALREADY_ENDED
        from . import lifecycle
        from .ending import Ending

        ending = Ending(outcome, summary_json=sanitize.to_json(stats), asked_ms=now_ms())
        report_ = lifecycle.end_run(run.store, run.run_id, ending, run=run)
        self._run_id, self._open = run.run_id, None
        return report_.result != ALREADY_ENDED

    def end_run_with_exception(self, exc: BaseException) -> bool:
        """End the open run as its block or function died of `exc` (what `with tracker.run()` and `@track` do):
        `failure` with the exception as its crash row; `sys.exit(0)` / `SystemExit(0)` ends it `success`.
        Never raises; True if the end was written."""
        run = self._open
        if run is None:
            return False
        from . import lifecycle
        from .ending import exception_ending

        try:
            ending = exception_ending(exc)
            if ending.kind is None:
                return self.end_run(ending.outcome)
            lifecycle.end_run(run.store, run.run_id, ending, run=run)
        except Exception as error:
            report("recording the run's exception", error)
            return False  # the run stays registered with its pending end: the exit hook writes it
        self._run_id, self._open = run.run_id, None
        return True

    @property
    def had_problems(self) -> bool:
        """Whether the open run recorded an error or ended a step failed or partial (or lost a thread or task):
        `with tracker.run()` then ends it `partial` rather than `success`."""
        run = self._open
        return run is not None and bool(run.problems or run.crashes)

    def close(self) -> None:
        """The seed's close: nothing to do. The process keeps one connection per database for all its trackers
        (closing it at every run would cost more than the run), and a run left open stays open."""

    # -- Pythonic forms ----------------------------------------------------------------------------------
    def run(self, stats: dict[str, Any] | None = None) -> Run:
        """``with tracker.run() as run:`` starts a run, ends it `success` (or `partial`), or `failure` on an
        exception, which is recorded as the run's crash and re-raised."""
        return Run(self, stats)

    def step(self, name: str) -> Step:
        """``with tracker.step("download") as step: step.created += 1``"""
        return Step(self, name)

    # -- internals ---------------------------------------------------------------------------------------
    def _record(self, run: OpenRun, errors: Iterable[ErrorIn]) -> None:
        from . import lifecycle

        def in_progress() -> str | None:
            step = run.step_in_progress()
            return step.name if step is not None else None

        lifecycle.record_errors(run.store, run.run_id, self.club_slug, errors, run.known_steps,  # type: ignore[arg-type]
                                in_progress, run=run)

    def _require_run(self, what: str, *, write: bool = True) -> OpenRun | None:
        """The open run, written to the database (raises if it cannot be: the call's guard logs it once).
        `write=False`: as it is (its end writes it, or keeps the end pending)."""
        run = self._open
        if run is None:
            # Once per tracker: a pipeline whose start_run failed may make thousands of calls.
            level = logging.DEBUG if self._warned_no_run else logging.WARNING
            self._warned_no_run = True
            log.log(level, "runtracker: %s without an open run (start_run failed or was not called); ignored", what)
            return None
        # Inline, as this runs at every call: the store notices a file deleted or replaced under it (one stat);
        # lifecycle writes the run (again) only when its start is not written, or was into another file.
        if write and not run.ended:
            followed = run.store.follow_file()
            if followed or run.run_id is None or run.generation != run.store.generation:
                from . import lifecycle

                lifecycle.ensure_written(run, followed)
            if run.log_rows:  # ERROR log records (record_log_errors), kept since the last call
                from . import lifecycle

                lifecycle.write_log_rows(run)
        return run



def track(pipeline: str | Callable[..., Any] | None = None, **tracker_options: Any) -> Any:
    """Decorate a pipeline function (sync or async) so every call is one tracked run.

    ``@track``, ``@track("nikki")`` or ``@track("nikki", db="sqlite:///dash.sqlite")``. Inside, use
    ``current_run()`` to reach the run.
    """

    def decorate(fn: F, name: str | None) -> F:
        pipeline_name = name or fn.__name__
        if _is_coroutine_function(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with RunTracker(pipeline_name, **tracker_options).run():
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with RunTracker(pipeline_name, **tracker_options).run():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    if callable(pipeline):
        return decorate(pipeline, None)
    return lambda fn: decorate(fn, pipeline)


_CO_COROUTINE = 0x0080  # inspect.CO_COROUTINE; `inspect` itself costs a third of `import runtracker`


def _is_coroutine_function(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return code is not None and bool(code.co_flags & _CO_COROUTINE)


def _known_step(run: OpenRun, step_id: object) -> int | None:
    """The step id if it is one of this run's steps; an unknown id would break the foreign key, so the
    error is kept and the link dropped."""
    # Only an int can be a step id (a list or dict is not even hashable; True would be step 1).
    if step_id is None or (type(step_id) is int and step_id in run.known_steps):
        return step_id  # type: ignore[return-value]
    log.warning("runtracker: error recorded against unknown step id %s; stored without the step link",
                redact.shown(step_id))
    return None


def _clean_name(step_name: object) -> str | None:
    """The step name an error names, cleaned; None: it names none (`lifecycle.record_errors` finds its step)."""
    return None if step_name is None else sanitize.name(step_name)


def _error_in(step_name: str | None, step_id: int | None, item: object) -> ErrorIn:
    """One entry of an error list, as `lifecycle.record_errors` takes it."""
    if isinstance(item, BaseException):
        stack = "".join(traceback.format_exception(type(item), item, item.__traceback__))
        return step_name, step_id, None, sanitize.exception_text(item), stack
    if isinstance(item, dict):
        return step_name, step_id, _first(item, _MEMBER_KEYS), _first(item, _MESSAGE_KEYS), _first(item, _STACK_KEYS)
    return step_name, step_id, None, item, None


def _first(item: dict[Any, Any], keys: tuple[str, ...]) -> object:
    """The first of `keys` that `item` holds a non-None value for (a plain loop: this runs per error row)."""
    for key in keys:
        value = item.get(key)
        if value is not None:
            return value
    return None
