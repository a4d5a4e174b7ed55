"""`runtracker exec` as another process starts it: the command line, the environment it reads besides
RUNTRACKER_DB, and the exit status that means another run holds the lock.

This is exec's public face for launchers (the dashboard's Start button), which run it as a command of its own,
never inside their process: the run then belongs to a process that outlives a restart of the launcher. It
imports nothing of runtracker, so a launcher loads none of exec's machinery (the wrapper, signal forwarding,
the core)."""

from __future__ import annotations

import sys

EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock; try again later
# Who asked for the run (the dashboard's Start button sets it: "dashboard:<user>"); stored in runs.started_by.
STARTED_BY_ENV = "RUNTRACKER_STARTED_BY"


def locked_argv(pipeline: str, config_path: str | None = None) -> list[str]:
    """The command line that runs the pipeline's configured command (from the config file at `config_path`, or
    the default one) under exec's lock, with this Python: `runtracker exec --lock --pipeline NAME`."""
    argv = [sys.executable, "-m", "runtracker", "exec", "--lock", "--pipeline", pipeline]
    if config_path:
        argv += ["--config", config_path]
    return argv
