"""The pipeline config file (runtracker.toml): which command a pipeline runs, how `runtracker exec` runs it, when
it is due, and whom the monitor tells when something goes wrong.

```toml
[defaults]                 # for every pipeline; each pipeline may override
lock = true
timeout = "2h"
timezone = "Europe/Amsterdam"
alerts = ["ops"]           # the channels of every pipeline that names none

[pipelines.nikki]
display_name = "Nikki sync"
description = "Members and contributions from Nikki"
command = ["node", "pipelines/sync-nikki.js", "--verbose"]   # a list is executed as it is
schedule = ["15 3 * * *", "15 15 * * 1-5"]                   # cron, in `timezone`
grace = "4h"               # overdue once a scheduled start is this late (the default)
max_runtime = "1h"         # a run still running after this long is too long
alerts = ["ops", "chat"]
alert_on = ["failed", "crashed", "overdue", "too_long", "recovered"]   # the default; "partial" is off

[pipelines.backup]
command = "pg_dump dashboard | gzip > /backup/dashboard.sql.gz"   # a string runs with /bin/sh -c
ownerless_timeout = "12h"  # for the reaper: a run of this pipeline that records no owner is lost after 12 h

[alerts]
dashboard_url = "https://dashboard.example.org"   # alerts link to /run/<id>
overdue_repeat = "4h"      # an overdue pipeline is alerted again at most this often

[alerts.channels]          # Apprise URLs: one or a list per channel
ops = "mailtos://alerts:secret@smtp.example.org?to=ops@example.org"
chat = "slack://T0000/B0000/XXXXXXXX"

[dashboard]
timezone = "Europe/Amsterdam"   # times on the dashboard and in `runtracker runs`/`show` (docs/settings.md)

[redact]                   # secrets out of recorded text (docs/redaction.md)
enabled = true             # the default; false stores text as it is
patterns = ["corp-[0-9a-f]{32}", "(?<=member-pin: )\\d+"]   # more regular expressions, each match -> ***
```

The file is `--config PATH`, else `$RUNTRACKER_CONFIG`, else `./runtracker.toml` if it exists. Unknown keys are
errors (a typo must not silently drop a timeout), and so are wrong values: the message names the file, the line,
the table and the key. The whole file is read and checked before anything of it is used, so a broken file is
never half applied. A wrong `ownerless_timeout` is a warning and is left out: the reaper reads it, and the
reaper must go on; so is a wrong `[dashboard] timezone` (settings/display.py: times are shown in UTC), since a
zone to read times in must never stop a pipeline. Cron expressions are checked with croniter when the caller
uses schedules (the monitor, the dashboard): `runtracker exec` does not load it (`load(schedules=False)`).
What the file says, once read, is a `PipelineConfig` (settings/pipelines.py).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import replace
from typing import Any

from ..base import redact
from ..base.events import EVENTS
from ..base.schedule import Schedule, check_expression, zone
from . import values
from .checks import redact_pattern_problem, shown
from .pipelines import (
    DEFAULT_OVERDUE_REPEAT_S,
    MAX_GRACE_S,
    MAX_TIMEOUT_S,
    MIN_OVERDUE_REPEAT_S,
    AlertSettings,
    Channel,
    ExecSettings,
    Pipeline,
    PipelineConfig,
    Watch,
    bounded_duration,
    parse_kill_after,
    parse_tail,
    parse_timeout,
    shell_command,
)
from .state import environment

CONFIG_ENV = "RUNTRACKER_CONFIG"
DEFAULT_CONFIG_PATH = "runtracker.toml"

# Keys of [defaults] and of each [pipelines.NAME]; `command`, `schedule` and the names only in the latter.
EXEC_KEYS = ("lock", "timeout", "kill_after", "tail")
WATCH_KEYS = ("timezone", "grace", "max_runtime", "alerts", "alert_on")
DEFAULTS_KEYS = (*EXEC_KEYS, "ownerless_timeout", *WATCH_KEYS)
PIPELINE_KEYS = ("command", "display_name", "description", "schedule", *DEFAULTS_KEYS)
TOP_KEYS = ("defaults", "pipelines", "alerts", "dashboard", "redact")
DASHBOARD_KEYS = ("timezone",)
REDACT_KEYS = ("enabled", "patterns")
ALERTS_KEYS = ("channels", "dashboard_url", "overdue_repeat")


class ConfigError(ValueError):
    """The config file is missing, not TOML, or has a value we cannot use; the message says where."""


def config_path(path: str | None = None) -> str | None:
    """The config file to read: the argument, $RUNTRACKER_CONFIG, or ./runtracker.toml if it exists."""
    if path:
        return path
    if environment(CONFIG_ENV):
        return environment(CONFIG_ENV)
    return DEFAULT_CONFIG_PATH if os.path.exists(DEFAULT_CONFIG_PATH) else None


def load(path: str | None = None, *, schedules: bool = True) -> PipelineConfig:
    """Read and check the config file; no file (and none asked for) is an empty config. `schedules=False`
    (runtracker exec, the reaper) leaves cron expressions and time zones unchecked, and croniter unloaded."""
    path = config_path(path)
    if path is None:
        return PipelineConfig()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the pipeline config {path}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    loaded = parse(data, path, raw.decode("utf-8"), schedules=schedules)
    # Applied to this process once the whole file is known to be right (the monitor, the dashboard, exec).
    redact.configure(enabled=loaded.redact_enabled, patterns=list(loaded.redact_patterns))
    return loaded


def parse(data: dict[str, Any], path: str = "<config>", text: str | None = None, *,
          schedules: bool = True) -> PipelineConfig:
    """Check the whole of a config file's data and build the config; ConfigError at the first mistake. `text`,
    the file's raw text, gives the messages their line numbers."""
    src = _Source(path, text)
    src.check_keys(data, (), TOP_KEYS)
    alerts = _alert_settings(src, src.table(data, ("alerts",)))
    table = src.table(data, ("defaults",))
    src.check_keys(table, ("defaults",), DEFAULTS_KEYS)
    defaults = ExecSettings().merged(_exec_values(src, table, ("defaults",)))
    default_ownerless = _ownerless(src, table, ("defaults",), "the global ownerless timeout")
    default_watch = _watch(src, table, ("defaults",), Watch(), alerts, schedules)
    pipelines = {}
    for name, table in src.table(data, ("pipelines",)).items():
        where = ("pipelines", name)
        if not isinstance(table, dict):
            raise ConfigError(f"{src.where(where)}: must be a table")
        src.check_keys(table, where, PIPELINE_KEYS)
        ownerless = _ownerless(src, table, where, "the one of [defaults], else the global one")
        pipelines[name] = Pipeline(
            name, _command(src, table, where), defaults.merged(_exec_values(src, table, where)),
            default_ownerless if ownerless is None else ownerless,
            _text(src, table, where, "display_name"), _text(src, table, where, "description"),
            _watch(src, table, where, default_watch, alerts, schedules),
        )
    enabled, patterns = _redact_settings(src, src.table(data, ("redact",)))
    dashboard = src.table(data, ("dashboard",))
    src.check_keys(dashboard, ("dashboard",), DASHBOARD_KEYS)
    # As given: settings/display checks it, and a wrong one is a warning there, never an error of the file.
    return PipelineConfig(path, defaults, pipelines, default_ownerless, default_watch, alerts, enabled, patterns,
                          src.lines, display_timezone=dashboard.get("timezone"))


def _redact_settings(src: _Source, table: dict[str, Any]) -> tuple[bool | None, tuple[str, ...]]:
    where = ("redact",)
    src.check_keys(table, where, REDACT_KEYS)
    enabled = table.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise src.error(where, "enabled", f"must be true or false, not {shown(enabled)}")
    patterns = table.get("patterns", [])
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list):
        raise src.error(where, "patterns", "must be a list of regular expressions, e.g. [\"corp-[0-9a-f]{32}\"]")
    for pattern in patterns:
        problem = redact_pattern_problem(pattern)
        if problem is not None:
            raise src.error(where, "patterns", f"{shown(pattern)} is {problem}")
    return enabled, tuple(patterns)


class _Source:
    """Where a value is in the file: tomllib gives no line numbers for values, so each table's keys are looked
    up in the raw text (a key in an inline table is found as the line of its table)."""

    _KEY = r"((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=(.*)"
    _HEADER = r"\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?"

    def __init__(self, path: str, text: str | None) -> None:
        self.path = path
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        multiline: str | None = None
        for number, raw in enumerate((text or "").splitlines(), 1):
            line = raw.strip()
            if multiline is not None:
                if line.count(multiline) % 2:
                    multiline = None
                continue
            header = re.fullmatch(self._HEADER, line)
            if header is not None:
                table = _key_path(header.group(1))
                self.lines.setdefault(table, number)
                continue
            key = re.match(self._KEY, line)
            if key is not None:
                self.lines.setdefault(table + _key_path(key.group(1)), number)
                multiline = next((q for q in ('"""', "'''") if key.group(2).count(q) % 2), None)

    def where(self, table: tuple[str, ...], key: str | None = None) -> str:
        """`runtracker.toml:12: [pipelines.nikki] schedule`: the file, the line (when known), table and key."""
        path = (*table, key) if key is not None else table
        line = next((self.lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in self.lines), None)
        place = f"{self.path}:{line}:" if line is not None else f"{self.path}:"
        name = ".".join(table)
        if not table:
            return f"{place} {key}" if key else place
        return f"{place} [{name}]" + (f" {key}" if key is not None else "")

    def table(self, data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        value = data.get(path[-1], {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.where(path[:-1], path[-1])}: must be a table")
        return value

    def check_keys(self, table: dict[str, Any], path: tuple[str, ...], allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(table) - set(allowed), key=lambda k: (self.lines.get((*path, k), 0), k))
        if unknown:
            what = "unknown key" if len(unknown) == 1 else "unknown keys"
            raise ConfigError(f"{self.where(path, ', '.join(unknown))}: {what}; allowed: {', '.join(allowed)}")

    def error(self, table: tuple[str, ...], key: str, problem: object) -> ConfigError:
        return ConfigError(f"{self.where(table, key)}: {problem}")


def _key_path(text: str) -> tuple[str, ...]:
    return tuple(a or b or c for a, b, c in re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", text))


def _exec_values(src: _Source, table: dict[str, Any], where: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    parsers = {"timeout": parse_timeout, "kill_after": parse_kill_after, "tail": parse_tail}
    for key in EXEC_KEYS:
        if key not in table:
            continue
        try:
            if key == "lock":
                if not isinstance(table["lock"], bool):
                    raise ValueError("must be true or false")
                values["lock"] = table["lock"]
            else:
                values[key] = parsers[key](table[key])  # a timeout of 0 switches a default timeout off
        except ValueError as exc:
            raise src.error(where, key, exc) from exc
    return values


def _watch(src: _Source, table: dict[str, Any], where: tuple[str, ...], base: Watch, alerts: AlertSettings,
           check: bool) -> Watch:
    """The pipeline's (or [defaults]') schedule, grace, maximum runtime and alert routing over `base`."""
    own: dict[str, Any] = {}
    try:
        key = "timezone"
        if key in table:
            name = table[key]
            if not isinstance(name, str) or not name:
                raise ValueError("must be a time zone name, such as Europe/Amsterdam")
            if check:
                zone(name)
            own[key] = name
        key = "grace"
        if key in table:
            own["grace_s"] = bounded_duration(table[key], "the grace", MAX_GRACE_S)
        key = "max_runtime"
        if key in table:
            own["max_runtime_s"] = bounded_duration(table[key], "max_runtime", MAX_TIMEOUT_S) or None
        key = "alerts"
        if key in table:
            own["channels"] = tuple(_names(table[key], "channel names"))
            missing = [n for n in own["channels"] if n not in alerts.channels]
            if missing:
                known = ", ".join(alerts.channels) or "none"
                raise ValueError(f"no channel {missing[0]!r} in [alerts.channels] (there: {known})")
        key = "alert_on"
        if key in table:
            events = _names(table[key], "events")
            unknown = [e for e in events if e not in EVENTS]
            if unknown:
                raise ValueError(f"unknown event {unknown[0]!r}; events: {', '.join(EVENTS)}")
            own["events"] = frozenset(events)
        key = "schedule"
        expressions = table.get(key)
        if expressions is not None:
            expressions = [expressions] if isinstance(expressions, str) else expressions
            if not expressions or not all(isinstance(e, str) and e.strip() for e in expressions):
                raise ValueError("must be a cron expression or a non-empty list of them")
            for expression in expressions:
                _check_cron(expression, check)
    except ValueError as exc:
        raise src.error(where, key, exc) from exc
    watch = replace(base, **own)
    if expressions is not None:
        watch = replace(watch, schedule=Schedule(tuple(e.strip() for e in expressions), watch.timezone))
    elif watch.schedule is not None and watch.schedule.timezone != watch.timezone:
        watch = replace(watch, schedule=Schedule(watch.schedule.expressions, watch.timezone))
    return watch


def _check_cron(expression: str, check: bool) -> None:
    if not check:
        return
    try:
        check_expression(expression)
    except ImportError:
        return  # without croniter nothing evaluates schedules; the monitor says what to install


def _names(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"must be a list of {what}, e.g. [\"ops\"] (or [] for none)")
    return list(value)


def _alert_settings(src: _Source, table: dict[str, Any]) -> AlertSettings:
    where = ("alerts",)
    src.check_keys(table, where, ALERTS_KEYS)
    channels: dict[str, Channel] = {}
    for name, value in src.table(table, (*where, "channels")).items():
        urls = [value] if isinstance(value, str) else value
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and "://" in u for u in urls):
            raise src.error((*where, "channels"), name, "must be an Apprise URL (e.g. \"mailtos://user:pass@host"
                            "?to=ops@example.org\", \"json://host/path\") or a list of them")
        channels[name] = Channel(name, tuple(urls), src.where((*where, "channels"), name))
    url = table.get("dashboard_url")
    if url is not None and (not isinstance(url, str) or not re.match(r"https?://[^\s]+$", url)):
        raise src.error(where, "dashboard_url", f"must be an http:// or https:// URL, not {redact.shown(url)}")
    repeat = DEFAULT_OVERDUE_REPEAT_S
    if "overdue_repeat" in table:
        try:
            repeat = bounded_duration(table["overdue_repeat"], "overdue_repeat", MAX_TIMEOUT_S)
            if repeat < MIN_OVERDUE_REPEAT_S:
                raise ValueError(f"overdue_repeat is at least 1m, not {table['overdue_repeat']!r}")
        except ValueError as exc:
            raise src.error(where, "overdue_repeat", exc) from exc
    return AlertSettings(channels, url.rstrip("/") if url else None, repeat)


def _text(src: _Source, table: dict[str, Any], where: tuple[str, ...], key: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise src.error(where, key, "must be text")
    return value


def _ownerless(src: _Source, table: dict[str, Any], where: tuple[str, ...], instead: str) -> float | None:
    if "ownerless_timeout" not in table:
        return None
    raw = table["ownerless_timeout"]
    return values.checked_ownerless_timeout(
        raw, f"{src.where(where, 'ownerless_timeout')}={shown(raw)}", instead)


def _command(src: _Source, table: dict[str, Any], where: tuple[str, ...]) -> tuple[str, ...] | None:
    value = table.get("command")
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return shell_command(value)
    if isinstance(value, list) and value and all(isinstance(part, str) for part in value):
        return tuple(value)
    raise src.error(where, "command", "must be a non-empty list of strings, or a shell command line")


