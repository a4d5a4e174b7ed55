"""The base layer: values and rules every other room uses, importing nothing of runtracker above it.

- `clock`: time as milliseconds and ISO text; `units`: durations ("2h") and sizes ("10KB");
- `records`: small value classes; `outcomes`: the outcomes a run or step can have; `events`: what alerts are about;
- `redact`, `sanitize`: secrets masked and values from outside made safe to store;
- `guard`: tracking never breaks the pipeline (what is swallowed, and how it is logged);
- `terminal`: text from outside made safe for a terminal; `schedule`: cron expressions and time zones;
- `status`: a pipeline's status (overdue since, runs too long, next due) as one pure function.
- `tail`: the last bytes of a command's output (or a ping's body) kept for the run.
"""
