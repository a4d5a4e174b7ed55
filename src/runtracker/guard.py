"""The one swallow-and-log guard: tracking never breaks the pipeline.

Every public method of the tracker goes through `guarded`. A failure inside it (a broken database, bad input,
a bug of ours) is logged on the `runtracker` logger and the method returns its default. Only `Exception` is
swallowed: KeyboardInterrupt and SystemExit belong to the user and always propagate.

Tests set `swallowed` to a list (see `runtracker.testing`) so that "never raise" cannot hide bugs in them.
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


# When a list, every swallowed exception is appended to it (the test suite inspects it).
swallowed: list[BaseException] | None = None


def report(where: str, exc: BaseException) -> None:
    """Log an internal failure clearly, once, without raising."""
    try:
        if swallowed is not None:
            swallowed.append(exc)
        log.error("runtracker: %s failed, tracking skipped (%s: %s)", where, type(exc).__name__, exc,
                  exc_info=log.isEnabledFor(logging.DEBUG))
    except Exception:  # logging itself can fail (closed stderr); nothing more to do
        pass


def guarded(default: Any = None) -> Callable[[F], F]:
    """Decorate a public method so that its failures are logged and `default` is returned."""

    def decorate(fn: F) -> F:
        where = fn.__qualname__

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                report(where, exc)
                return default

        return wrapper  # type: ignore[return-value]

    return decorate
