"""The Pythonic forms: `with tracker.run() as run`, `with run.step(name) as step`, and `@track`.

They write the same records as the seed's calls. A block that sees an exception records it, marks the
step/run `failure`, and re-raises: the user's exception is never swallowed.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .outcomes import FAILURE, PARTIAL, SUCCESS

if TYPE_CHECKING:
    from .tracker import RunTracker

F = TypeVar("F", bound=Callable[..., Any])

_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("runtracker_current_run", default=None)


def current_run() -> Run | None:
    """The run of the innermost `with tracker.run()` (or `@track` function) in this context, if any."""
    return _current.get()


class Step:
    """An open step: add to its counters; they are written when the block ends."""

    def __init__(self, tracker: RunTracker, name: str) -> None:
        self.tracker = tracker
        self.name = name
        self.id: int | None = None
        self.created = self.updated = self.skipped = self.failed = 0
        self.detail: Any = None
        self.outcome: str | None = None  # None: success, or partial when anything failed

    def error(self, message: object, member_identifier: object = None, stack: object = None) -> None:
        """Record an error against this step (it does not end the step)."""
        self.tracker.record_error(step_name=self.name, step_id=self.id, member_identifier=member_identifier,
                                  error_message=message, error_stack=stack)

    def errors(self, errors: object) -> None:
        self.tracker.record_errors(self.name, self.id, errors)

    def __enter__(self) -> Step:
        self.id = self.tracker.start_step(self.name)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self.tracker.record_error(
                step_name=self.name, step_id=self.id, error_message=f"{type(exc).__name__}: {exc}",
                error_stack="".join(traceback.format_exception(exc_type, exc, tb)),
            )
            outcome = FAILURE
        else:
            outcome = self.outcome or (PARTIAL if self.failed else SUCCESS)
        self.tracker.end_step(self.id, outcome, self.created, self.updated, self.skipped, self.failed, self.detail)


class Run:
    """An open run. `stats` becomes summary_json; `outcome` defaults to success (partial if any step
    failed or any error was recorded)."""

    def __init__(self, tracker: RunTracker, stats: dict[str, Any] | None = None) -> None:
        self.tracker = tracker
        self.stats: dict[str, Any] = dict(stats or {})
        self.outcome: str | None = None
        self._token: contextvars.Token[Run | None] | None = None

    @property
    def id(self) -> int | None:
        return self.tracker.run_id

    def step(self, name: str) -> Step:
        return Step(self.tracker, name)

    def error(self, message: object, member_identifier: object = None, stack: object = None,
              step_name: object = None) -> None:
        self.tracker.record_error(step_name=step_name, member_identifier=member_identifier,
                                  error_message=message, error_stack=stack)

    def __enter__(self) -> Run:
        self.tracker.start_run()
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        if exc is not None:
            self.tracker._end_with_exception(exc)
            return
        self.tracker.end_run(self.outcome or self._auto_outcome(), self.stats or None)

    def _auto_outcome(self) -> str:
        run = self.tracker._open
        if run is None:
            return SUCCESS
        try:
            steps = run.store.read(
                "SELECT COUNT(*) AS bad FROM run_steps WHERE run_id = ? AND (outcome IN ('failure', 'partial')"
                " OR failed_count > 0)", (run.run_id,))
            errors = run.store.count_errors(run.run_id)
        except Exception:
            return SUCCESS
        return PARTIAL if steps[0]["bad"] or errors else SUCCESS


def track(pipeline: str | Callable[..., Any] | None = None, **tracker_options: Any) -> Any:
    """Decorate a pipeline function (sync or async) so every call is one tracked run.

    ``@track``, ``@track("nikki")`` or ``@track("nikki", db="sqlite:///dash.sqlite")``. Inside, use
    ``current_run()`` to reach the run.
    """
    from .tracker import RunTracker

    def decorate(fn: F, name: str | None) -> F:
        pipeline_name = name or fn.__name__
        if inspect.iscoroutinefunction(fn):
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
