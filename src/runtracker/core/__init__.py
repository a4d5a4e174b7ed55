"""The core: what runs inside a pipeline's process and the rule that no run stays `running`.

- `tracker`, `context`: the Python API (RunTracker, track, current_run);
- `opening`: the one function that opens a run, for every front door (Python, exec, HTTP), preamble included;
- `lifecycle`: a run's row opened, its steps and errors (the one step rule), and the one function that ends it;
  `ending`: how a run ended (`Ending`), as its ender tells `lifecycle.end_run`;
- `state`: the process state (the open runs, the hooks installed, the settings);
- `hooks`: the crash hooks (exceptions, signals, exit, fork); `heartbeat`: the heartbeat;
- `crashfile`: the per-process crash file (faulthandler's traceback, last words), written and read;
- `logring`: the last log lines; `attach`: a Python child joining `runtracker exec`'s run;
- `liveness`, `reaper`: judging whether a run's process is gone, and ending the runs whose process is (at every
  `start_run`, `runtracker reap`, and the monitor's loop).
"""
