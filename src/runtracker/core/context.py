"""The Pythonic forms: `with tracker.run() as run`, `with run.step(name) as step` (and `@track`, in tracker.py).

They write the same records as the seed's calls, through the tracker's public methods. A block that sees an
exception records it, marks the step/run `failure`, and re-raises: the user's exception is never swallowed.
"""

from __future__ import annotations

import contextvars
import traceback
from types import TracebackType

from ..base import sanitize
from ..base.outcomes import FAILURE, PARTIAL, SUCCESS

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Tracker(Protocol):
        """What these forms use of a tracker (`tracker.RunTracker`, which imports this module: a protocol here,
        not an import of it, keeps the import graph without a cycle, type-only imports included)."""

        @property
        def run_id(self) -> int | None: ...
        @property
        def had_problems(self) -> bool: ...
        def start_run(self) -> int | None: ...
        def start_step(self, step_name: str) -> int | None: ...
        def end_step(self, step_id: int | None, outcome: object = ..., created: object = ..., updated: object = ...,
                     skipped: object = ..., failed: object = ..., detail: object = ...) -> bool: ...
        def record_error(self, step_name: object = ..., step_id: int | None = ..., member_identifier: object = ...,
                         error_message: object = ..., error_stack: object = ...) -> None: ...
        def record_errors(self, step_name: object, step_id: int | None, errors: object) -> None: ...
        def end_run(self, outcome: object = ..., stats: object = ...) -> bool: ...
        def end_run_with_exception(self, exc: BaseException) -> bool: ...

_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("runtracker_current_run", default=None)


def current_run() -> Run | None:
    """The run of the innermost `with tracker.run()` (or `@track` function) in this context, if any."""
    return _current.get()


class Step:
    """An open step: add to its counters; they are written when the block ends."""

    def __init__(self, tracker: Tracker, name: str) -> None:
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
                step_name=self.name, step_id=self.id, error_message=sanitize.exception_text(exc),
                error_stack="".join(traceback.format_exception(exc_type, exc, tb)),
            )
            outcome = FAILURE
        else:
            outcome = self.outcome or (PARTIAL if self.failed else SUCCESS)
        self.tracker.end_step(self.id, outcome, self.created, self.updated, self.skipped, self.failed, self.detail)


class Run:
    """An open run. `stats` becomes summary_json; `outcome` defaults to success (partial if any step
    failed or any error was recorded)."""

    def __init__(self, tracker: Tracker, stats: dict[str, Any] | None = None) -> None:
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
            self.tracker.end_run_with_exception(exc)
            return
        outcome = self.outcome or (PARTIAL if self.tracker.had_problems else SUCCESS)
        self.tracker.end_run(outcome, self.stats or None)
