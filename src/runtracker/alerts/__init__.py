"""Alerts: the monitor tells people when a run failed, crashed or was reaped, a pipeline is overdue or a run takes
too long, and when it recovered — once per event, through Apprise channels (docs/alerts.md).

- `messages`: what an alert says (built from stored, already sanitised text only);
- `channels`: the Apprise URLs of the config file's `[alerts.channels]`, and sending through them;
- `delivery`: a thread per channel that claims due deliveries, sends them, and retries with backoff;
- `watcher`: what the monitor calls each pass and tick: ended runs, schedules, runs too long.

Needs the `alerts` extra (apprise, croniter); `import runtracker` never loads them.
"""

MISSING = (
    "alerts and schedules need the alerts extra, which is not installed: pip install 'runtracker[alerts]' "
    "(the monitor goes on reaping without it)"
)


def missing() -> str | None:
    """None when apprise and croniter can be imported; else the message saying what to install."""
    import importlib.util

    if all(importlib.util.find_spec(name) is not None for name in ("apprise", "croniter")):
        return None
    return MISSING
