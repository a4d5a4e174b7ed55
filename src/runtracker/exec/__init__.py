"""`runtracker exec`: track any command (shell scripts, cron lines, other languages) as a run.

- `wrapper`: opening the run (and the lock), starting and waiting for the command, recording its end.
- `output`: the output passed through byte for byte, and its tail kept for the run.
- `signals`: signals passed on to the command; dying by the command's signal.
- `oom`: telling the OOM killer's SIGKILL from another one.
- `command`: the command line, environment and lock exit status a launcher (the dashboard's Start) uses; the
  one module of exec that `web` imports.
The child's side (a Python pipeline joining the wrapper's run) is `runtracker.core.attach`.
"""
