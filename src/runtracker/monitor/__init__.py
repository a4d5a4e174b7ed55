"""The monitor: the long-running process that keeps runs true from outside (`runtracker monitor`, `serve --monitor`).

- `pidwatch`: waits on the pidfds of running pipelines on this host, so a death is seen the moment it happens.
"""
