"""Helpers for testing code that uses runtracker (and for runtracker's own tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .core.state import STATE


def reset() -> None:
    """Back to a fresh process: the process state (open runs, heartbeat, connections, every process hook; see
    `ProcessState.reset`) and the settings with it: what was resolved, the wrong ones warned about, and the
    redaction rules (built from the environment again)."""
    STATE.reset()


@contextmanager
def capture_swallowed() -> Iterator[list[BaseException]]:
    """Collect the exceptions the never-raise guard swallowed inside the block."""
    previous = STATE.guard.swallowed
    collected: list[BaseException] = []
    STATE.guard.swallowed = collected
    try:
        yield collected
    finally:
        STATE.guard.swallowed = previous
