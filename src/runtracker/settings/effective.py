"""The effective settings of this process, each with where it came from: the `Settings` object, and the rows
`runtracker config show` prints (`describe`), secrets masked.

A setting comes from an argument (a `RunTracker` argument; for the command, `--db` and `--config`), else its
environment variable, else the config file, else its default; the config file's own tables ([defaults],
[alerts], [redact], [pipelines.NAME]) are rows of their own, named `table.key`. Nothing here warns on the
logger: a wrong value's warning is part of its row, as the library would log it.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from ..base import redact
from ..base.records import Record
from ..base.units import format_duration
from . import configfile, display, values, web
from .configfile import EXEC_KEYS
from .pipelines import PipelineConfig, Watch
from .state import ARGUMENT, CONFIG_FILE, DEFAULT, ENVIRONMENT, Setting, environment

# The settings of the process, in the order `config show` prints them.
NAMES = ("db", "config", *values.SPEC, "crash_dir", "hostname", "web_secret", "timezone", "cli_timezone")
NOT_SET = "(none)"
# Values in seconds and in bytes, by their names (a pipeline's keys too), shown as `2h` and `10KB`.
_SECONDS = ("heartbeat_s", "heartbeat_timeout_s", "ownerless_timeout_s", "timeout", "kill_after", "ownerless_timeout",
            "grace", "max_runtime", "overdue_repeat")
_BYTES = ("tail",)


class Settings(Record):
    """Every setting of the process as a `Setting`: value, source, where, what was given, warnings."""

    __slots__ = NAMES
    db: Setting
    config: Setting
    retention_days: Setting
    heartbeat_s: Setting
    heartbeat_timeout_s: Setting
    log_lines: Setting
    record_log_errors: Setting
    ownerless_timeout_s: Setting
    redact: Setting
    redact_patterns: Setting
    crash_dir: Setting
    hostname: Setting
    web_secret: Setting
    timezone: Setting  # the display time zone (settings/display.configured)
    cli_timezone: Setting  # the one `runtracker runs` and `show` use (settings/display.for_commands)

    def __init__(self, **settings: Setting) -> None:
        for name in NAMES:
            setattr(self, name, settings[name])


def current(db: object = None, config_path: str | None = None) -> Settings:
    """The settings now: `db` and `config_path` as the command line gives them (None: not given)."""
    found = {name: values.setting(name) for name in values.SPEC}
    return Settings(db=values.database(db), config=config_file(config_path), crash_dir=_crash_dir(),
                    hostname=_hostname(), web_secret=_web_secret(), timezone=display.configured(),
                    cli_timezone=display.for_commands(), **found)


def config_file(path: str | None = None) -> Setting:
    """Which config file is read: `--config`, else $RUNTRACKER_CONFIG, else ./runtracker.toml if it exists."""
    if path:
        return Setting("config", path, ARGUMENT, "--config", path)
    if environment(configfile.CONFIG_ENV):
        return Setting("config", environment(configfile.CONFIG_ENV), ENVIRONMENT, configfile.CONFIG_ENV,
                       environment(configfile.CONFIG_ENV))
    return Setting("config", configfile.config_path(None))


def describe(db: object = None, config_path: str | None = None) -> list[dict[str, Any]]:
    """The rows of `runtracker config show`: name, value, text, source, where, given, warnings; secrets masked."""
    # What the library would log on the way (the redaction rules are built from the settings; the config file
    # warns about a wrong ownerless_timeout) is caught, and shown with the rows it belongs to instead.
    with _warnings_caught() as caught:
        settings = current(db, config_path)
        file_rows: list[dict[str, Any]] = []
        if settings.config.value is not None:
            try:
                config = configfile.load(str(settings.config.value))
            except configfile.ConfigError as exc:
                settings.config.warnings += (f"{exc}; nothing of the file is used",)
            else:
                file_rows = _file_rows(config)
                settings.timezone = display.configured(config)
                settings.cli_timezone = display.for_commands(config)
                if config.redact_enabled is not None:  # the file's [redact] enabled wins over the environment
                    settings.redact = Setting("redact", config.redact_enabled, CONFIG_FILE,
                                              config.place("redact", "enabled"), config.redact_enabled)
        rows = [_row(getattr(settings, name)) for name in NAMES]
    for warning in caught:
        if any(redact.masked(warning) in row["warnings"] for row in rows):
            continue  # a setting's own warning, already in its row
        row = next((r for r in file_rows if r["where"] and f"{r['where']}:" in warning), rows[NAMES.index("config")])
        row["warnings"].append(redact.masked(warning))
    return rows + file_rows


def masked_url(url: str) -> str:
    """An alert channel's URL as `config show` prints it: what base/redact masks (a password, `token=`), and
    the path (where a webhook's token goes) and a host without a dot (a token, in Apprise's short forms such
    as slack://TokenA/TokenB/TokenC) as `***`; the scheme, user, host and port stay."""
    url = redact.masked(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return redact.MARK
    if "." not in host and host != "localhost":
        return f"{parts.scheme}://{redact.MARK}"
    shown = f"{parts.scheme}://{parts.netloc}"
    if parts.path not in ("", "/"):
        shown += "/" + redact.MARK
    return shown + (f"?{parts.query}" if parts.query else "")


# -- rows -----------------------------------------------------------------------------------------------------
def _row(setting: Setting) -> dict[str, Any]:
    secret = setting.name == "web_secret"
    value, given = setting.value, setting.raw
    if setting.name == "db":
        value = None if value is None else redact.masked(str(value))
        given = None if given is None else redact.masked(os.fspath(given) if isinstance(given, str | os.PathLike)
                                                         else repr(given))
    elif isinstance(value, tuple):
        value = list(value)
    return {"name": setting.name, "value": value, "text": text(setting.name, value), "source": setting.source,
            "where": setting.where, "given": redact.MARK if secret and given else given,
            "warnings": [redact.masked(w) for w in setting.warnings]}


def _file_row(config: PipelineConfig, name: str, value: object, path: tuple[str, ...]) -> dict[str, Any]:
    here = config.path is not None and path in config.lines
    return {"name": name, "value": value, "text": text(name.rsplit(".", 1)[-1], value),
            "source": CONFIG_FILE if here else DEFAULT, "where": config.place(*path) if here else "",
            "given": None, "warnings": []}


def text(name: str, value: object) -> str:
    """A value as a person reads it: durations as `2h`, sizes as `10KB`, on/off, lists joined, none."""
    if value is None:
        return NOT_SET
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float) and name in _SECONDS:
        return format_duration(float(value))
    if isinstance(value, int) and name in _BYTES:
        return f"{value // 1024}KB" if value and value % 1024 == 0 else f"{value}B"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple) and name == "command":
        return shlex.join(value)
    if isinstance(value, list | tuple):
        return ", ".join(text(name, v) for v in value) if value else NOT_SET
    if isinstance(value, dict):
        return "; ".join(f"{k} = {text(k, v)}" for k, v in value.items())
    return str(value)


def _file_rows(config: PipelineConfig) -> list[dict[str, Any]]:
    rows = []
    defaults = config.defaults
    for key in EXEC_KEYS:
        value = getattr(defaults, key)
        rows.append(_file_row(config, f"defaults.{key}", value, ("defaults", key)))
    rows.append(_file_row(config, "defaults.ownerless_timeout", config.default_ownerless_timeout_s,
                          ("defaults", "ownerless_timeout")))
    watch = config.default_watch
    for key, value in _watch_values(watch).items():
        rows.append(_file_row(config, f"defaults.{key}", value, ("defaults", key)))
    rows.append(_file_row(config, "alerts.dashboard_url", config.alerts.dashboard_url, ("alerts", "dashboard_url")))
    rows.append(_file_row(config, "alerts.overdue_repeat", config.alerts.overdue_repeat_s,
                          ("alerts", "overdue_repeat")))
    for channel in config.alerts.channels.values():
        rows.append(_file_row(config, f"alerts.channels.{channel.name}", [masked_url(u) for u in channel.urls],
                              ("alerts", "channels", channel.name)))
    rows.append(_file_row(config, "redact.patterns", list(config.redact_patterns), ("redact", "patterns")))
    for pipeline in config.pipelines.values():
        own: dict[str, Any] = {"command": list(pipeline.command) if pipeline.command else None}
        own.update({k: getattr(pipeline.settings, k) for k in EXEC_KEYS
                    if getattr(pipeline.settings, k) != getattr(defaults, k)})
        if pipeline.ownerless_timeout_s != config.default_ownerless_timeout_s:
            own["ownerless_timeout"] = pipeline.ownerless_timeout_s
        if pipeline.watch.schedule is not None:
            own["schedule"] = list(pipeline.watch.schedule.expressions)
        base_watch = _watch_values(watch)
        own.update({k: v for k, v in _watch_values(pipeline.watch).items() if v != base_watch[k]})
        row = _file_row(config, f"pipelines.{pipeline.name}", own, ("pipelines", pipeline.name))
        rows.append({**row, "source": CONFIG_FILE, "where": config.place("pipelines", pipeline.name)})
    return rows


def _watch_values(watch: Watch) -> dict[str, Any]:
    return {"timezone": watch.timezone, "grace": watch.grace_s, "max_runtime": watch.max_runtime_s,
            "alerts": None if watch.channels is None else list(watch.channels),
            "alert_on": sorted(watch.events)}


def _crash_dir() -> Setting:
    configured = values.crash_dir()
    if configured is None:
        return Setting("crash_dir", None)
    return Setting("crash_dir", configured, ENVIRONMENT, values.CRASH_DIR_ENV, environment(values.CRASH_DIR_ENV))


def _hostname() -> Setting:
    name = values.hostname()
    if name is None:
        return Setting("hostname", os.uname().nodename)
    return Setting("hostname", name, ENVIRONMENT, values.HOSTNAME_ENV, name)


def _web_secret() -> Setting:
    """The dashboard's session secret, never shown: whether it is set, and whether `serve` would take it."""
    secret = environment(web.SECRET_ENV)
    if not secret:
        return Setting("web_secret", None)
    warnings: tuple[str, ...] = ()
    try:
        web.session_secret(False, {web.SECRET_ENV: secret})
    except web.SettingsError as exc:
        warnings = (str(exc),)
    return Setting("web_secret", f"{redact.MARK} ({len(secret)} characters)", ENVIRONMENT, web.SECRET_ENV, secret,
                   warnings)


@contextmanager
def _warnings_caught() -> Iterator[list[str]]:
    """The warnings the `runtracker` logger gets inside the block, kept from it (they become rows' warnings)."""
    caught: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                caught.append(record.getMessage())

    logger = logging.getLogger("runtracker")
    handler, propagate = Catch(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield caught
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
