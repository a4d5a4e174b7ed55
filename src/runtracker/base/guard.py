"""The one swallow-and-log guard: tracking never breaks the pipeline.

Every public method of the tracker goes through `guarded`. A failure inside it (a broken database, bad input,
a bug of ours) is logged on the `runtracker` logger and the method returns its default. Only `Exception` is
swallowed: KeyboardInterrupt and SystemExit belong to the user and always propagate.

Tests give `GUARD.swallowed` a list (see `runtracker.testing`) so that "never raise" cannot hide bugs in them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("runtracker")


class GuardState:
    """What the guard keeps for the process. Part of the process state (`core.state.STATE.guard` is this very
    object): it lives here because the base layer imports nothing above it."""

    __slots__ = ("swallowed",)

    def __init__(self) -> None:
        # When a list, every swallowed exception is appended to it (the test suite inspects it).
        self.swallowed: list[BaseException] | None = None


GUARD = GuardState()


def report(where: str, exc: BaseException) -> None:
    """Log an internal failure clearly, once, without raising."""
    try:
        swallowed = GUARD.swallowed
        if swallowed is not None:
            swallowed.append(exc)
        log.error("runtracker: %s failed, tracking skipped (%s: %s)", where, type(exc).__name__, exc,
                  exc_info=log.isEnabledFor(logging.DEBUG))
    except Exception:  # logging itself can fail (closed stderr); nothing more to do
        pass


class Troubles:
    """The failures of one run's tracking calls. The first of each kind (the call, the exception's type) is
    logged; the others are counted, and `flush` logs one line per kind when the run ends: a full disk costs a
    pipeline of 200 calls two log lines, not 200."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def report(self, where: str, exc: BaseException) -> None:
        key = (where, type(exc).__name__)
        seen = self.counts.get(key, 0)
        self.counts[key] = seen + 1
        if seen == 0:
            report(where, exc)
        elif GUARD.swallowed is not None:
            GUARD.swallowed.append(exc)

    def flush(self, what: str) -> None:
        """Say how many failures of each kind were not logged one by one (`what`: e.g. "run 42")."""
        try:
            for (where, kind), count in self.counts.items():
                if count > 1:
                    log.error("runtracker: %s failed %d more time%s during %s (%s), not logged one by one", where,
                              count - 1, "" if count == 2 else "s", what, kind)
        except Exception:  # logging itself can fail (closed stderr); nothing more to do
            pass
        self.counts.clear()


def guarded(default: Any = None) -> Callable[[F], F]:
    """Decorate a public method so that its failures are logged and `default` is returned. When the object has a
    `troubles` (a Troubles, e.g. a tracker's for its open run), each kind of failure is logged once there."""

    def decorate(fn: F) -> F:
        where = fn.__qualname__

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                troubles = getattr(args[0], "troubles", None) if args else None
                if isinstance(troubles, Troubles):
                    troubles.report(where, exc)
                else:
                    report(where, exc)
                return default

        return wrapper  # type: ignore[return-value]

    return decorate
