"""Is a process alive, and is it the one that started a run? (psutil, so it works on Linux and macOS.)"""

from __future__ import annotations


def process_start_time(pid: int) -> float | None:
    """The process's start time in seconds since the epoch, or None if there is no such process."""
    import psutil  # imported here: `import runtracker` stays cheap

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None
