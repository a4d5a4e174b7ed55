"""The settings: every one resolved in one place, from an argument, else the environment, else the config file,
else its default (docs/settings.md says where the config file comes in for each), checked against its range,
and knowing where it came from. Above the base layer, below everything else.

- `values`: the library's settings (database, retention, heartbeat, log lines, ownerless timeout, redaction),
  one function each; `checks`: the checks of their values;
- `configfile`: the pipeline config file (runtracker.toml) read and checked; `pipelines`: what it says;
- `web`: the dashboard's settings (the session secret); `display`: the display time zone;
- `state`: `SETTINGS`, what was resolved and warned about in this process (`reset()` forgets it, in one call);
- `effective`: the `Settings` object, every setting with its source, as `runtracker config show` prints it.

Nothing is imported here: `import runtracker` loads `values` (cheap) and nothing else of this package.
"""
