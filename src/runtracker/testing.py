"""Helpers for testing code that uses runtracker (and for runtracker's own tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .base import guard
from .core import hooks
from .core.state import STATE


def reset() -> None:
    """Forget open runs, stop the heartbeat, close this process's connections, put back every process hook, and
    forget the settings resolved, the wrong ones warned about and the redaction rules (built from the
    environment again)."""
    STATE.reset()
    hooks.uninstall()


@contextmanager
def capture_swallowed() -> Iterator[list[BaseException]]:
    """Collect the exceptions the never-raise guard swallowed inside the block."""
    previous = guard.swallowed
    collected: list[BaseException] = []
    guard.swallowed = collected
    try:
        yield collected
    finally:
        guard.swallowed = previous
