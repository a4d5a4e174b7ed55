"""The monitor: the long-running process that keeps runs true from outside (`runtracker monitor`, `serve --monitor`).

- `loop`: the one loop that both run: pidfd waits, reaping (`core.reaper`), schedules and alerts (the alerts'
  watcher);
- `pidwatch`: waits on the pidfds of running pipelines on this host, so a death is seen the moment it happens.
"""
