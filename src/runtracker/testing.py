"""Helpers for testing code that uses runtracker (and for runtracker's own tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from . import config
from .base import guard, redact
from .core import hooks
from .core.state import STATE


def reset() -> None:
    """Forget open runs, stop the heartbeat, close this process's connections, put back every process hook, and
    forget which wrong settings were warned about and the redaction settings (read again from the environment)."""
    STATE.reset()
    hooks.uninstall()
    config.forget_warnings()
    redact.reset()


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
