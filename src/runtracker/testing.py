"""Helpers for testing code that uses runtracker (and for runtracker's own tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from . import guard, heartbeat, hooks, process, storage


def reset() -> None:
    """Forget open runs, close this process's connections and put back every process hook."""
    for run in process.open_runs():
        process.unregister(run)
    process.exit_code = None
    process.pending_signal = None
    heartbeat.reset()  # before closing the stores it may be writing to
    storage.close_all()
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
