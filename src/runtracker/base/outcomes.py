"""The outcome constants of runs and steps; every other module takes them from here."""

from __future__ import annotations

import logging

from .redact import shown

SUCCESS = "success"
PARTIAL = "partial"
FAILURE = "failure"
RUNNING = "running"
SKIPPED = "skipped"

RUN_OUTCOMES = (SUCCESS, FAILURE, RUNNING, PARTIAL)
STEP_OUTCOMES = (SUCCESS, FAILURE, SKIPPED, PARTIAL)

# The step_name of the error row a crash leaves behind (the seed's name for it).
CRASH_STEP = "crash"

# What the original tool's NOT NULL columns hold when a tracker is given nothing (and what an upgrade puts
# where an earlier runtracker left them empty): its dashboard shows club 'rondo' only.
DEFAULT_CLUB_SLUG = "rondo"
NO_STEP = "(run)"  # run_errors.step_name of an error recorded outside any step
NO_MESSAGE = "(no message)"

log = logging.getLogger("runtracker")


def normalize_outcome(value: object, allowed: tuple[str, ...], what: str) -> str:
    """Map a user's outcome to one the schema accepts: True/False, any case, else `failure` with a warning."""
    if value is True:
        return SUCCESS
    if value is False or value is None:
        return FAILURE
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in allowed and lowered != RUNNING:
            return lowered
    log.warning("runtracker: unknown %s outcome %s recorded as 'failure'", what, shown(value))
    return FAILURE
