"""runtracker: record every run of a scheduled pipeline; no run is ever left `running` by a process that died."""

from .base.outcomes import FAILURE, PARTIAL, RUNNING, SKIPPED, SUCCESS
from .core.context import Run, Step, current_run
from .core.tracker import RunTracker, track

__all__ = [
    "FAILURE",
    "PARTIAL",
    "RUNNING",
    "Run",
    "RunTracker",
    "SKIPPED",
    "SUCCESS",
    "Step",
    "current_run",
    "track",
]
__version__ = "0.1.0"
