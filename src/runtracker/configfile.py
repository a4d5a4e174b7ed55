"""The pipeline config file (runtracker.toml): which command a pipeline runs and how `runtracker exec` runs it.

```toml
[defaults]                 # for every pipeline; each pipeline may override
lock = true
timeout = "2h"

[pipelines.nikki]
command = ["node", "pipelines/sync-nikki.js", "--verbose"]   # a list is executed as it is
timeout = "30m"

[pipelines.backup]
command = "pg_dump dashboard | gzip > /backup/dashboard.sql.gz"   # a string runs with /bin/sh -c
kill_after = "30s"
tail = "64KB"
ownerless_timeout = "12h"  # for the reaper: a run of this pipeline that records no owner is lost after 12 h
```

The file is `--config PATH`, else `$RUNTRACKER_CONFIG`, else `./runtracker.toml` if it exists. Unknown keys are
errors (a typo must not silently drop a timeout), and so are wrong values of the exec settings (`runtracker exec`
refuses to start). A wrong `ownerless_timeout` is a warning and is left out: the reaper reads it, and the reaper
must go on. Later settings, such as schedules, are added to `PIPELINE_KEYS`.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, replace
from typing import Any

from . import config
from .execwrap.units import format_duration, parse_duration, parse_size

CONFIG_ENV = "RUNTRACKER_CONFIG"
DEFAULT_CONFIG_PATH = "runtracker.toml"
SHELL = "/bin/sh"

DEFAULT_TAIL_BYTES = 10 * 1024
MAX_TAIL_BYTES = 1024 * 1024
DEFAULT_KILL_AFTER_S = 10.0
MAX_TIMEOUT_S = 30 * 86400.0
MAX_KILL_AFTER_S = 86400.0

# Keys of [defaults] and of each [pipelines.NAME]; `command` only in the latter.
EXEC_KEYS = ("lock", "timeout", "kill_after", "tail")
DEFAULTS_KEYS = (*EXEC_KEYS, "ownerless_timeout")
PIPELINE_KEYS = ("command", *DEFAULTS_KEYS)


class ConfigError(ValueError):
    """The config file is missing, not TOML, or has a value we cannot use; the message says where."""


@dataclass(frozen=True)
class ExecSettings:
    """How `runtracker exec` runs a command. A `timeout` of None or 0 means no limit."""

    lock: bool = False
    timeout: float | None = None
    kill_after: float = DEFAULT_KILL_AFTER_S
    tail: int = DEFAULT_TAIL_BYTES

    def merged(self, values: dict[str, Any]) -> ExecSettings:
        """These settings with the non-None entries of `values` (already parsed) on top."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


@dataclass(frozen=True)
class Pipeline:
    name: str
    command: tuple[str, ...] | None = None
    settings: ExecSettings = field(default_factory=ExecSettings)
    # Its own `ownerless_timeout`, else the one of [defaults]; None: the global one (config.ownerless_timeout_s).
    ownerless_timeout_s: float | None = None


@dataclass(frozen=True)
class PipelineConfig:
    path: str | None = None
    defaults: ExecSettings = field(default_factory=ExecSettings)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    default_ownerless_timeout_s: float | None = None  # `ownerless_timeout` in [defaults]

    def pipeline(self, name: str) -> Pipeline:
        """The configured pipeline, or one with the defaults and no command."""
        return self.pipelines.get(name) or Pipeline(name, None, self.defaults, self.default_ownerless_timeout_s)

    def ownerless_timeout_s(self, pipeline: str) -> float | None:
        """Seconds a run of `pipeline` that records no owner may run before the reaper judges it lost: the
        pipeline's own `ownerless_timeout`, else the one in [defaults], else None (use
        `config.ownerless_timeout_s()`)."""
        return self.pipeline(pipeline).ownerless_timeout_s


def config_path(path: str | None = None) -> str | None:
    """The config file to read: the argument, $RUNTRACKER_CONFIG, or ./runtracker.toml if it exists."""
    if path:
        return path
    if os.environ.get(CONFIG_ENV):
        return os.environ[CONFIG_ENV]
    return DEFAULT_CONFIG_PATH if os.path.exists(DEFAULT_CONFIG_PATH) else None


def load(path: str | None = None) -> PipelineConfig:
    """Read and check the config file; no file (and none asked for) is an empty config."""
    path = config_path(path)
    if path is None:
        return PipelineConfig()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read the pipeline config {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse(data, path)


def parse(data: dict[str, Any], path: str = "<config>") -> PipelineConfig:
    _check_keys(data, ("defaults", "pipelines"), path)
    table = _table(data, "defaults", path)
    defaults = ExecSettings().merged(_exec_values(table, DEFAULTS_KEYS, f"{path} [defaults]"))
    default_ownerless = _ownerless(table, f"{path} [defaults]", "the global ownerless timeout")
    pipelines = {}
    for name, table in _table(data, "pipelines", path).items():
        where = f"{path} [pipelines.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        ownerless = _ownerless(table, where, "the one of [defaults], else the global one")
        pipelines[name] = Pipeline(
            name, _command(table.get("command"), where), defaults.merged(_exec_values(table, PIPELINE_KEYS, where)),
            default_ownerless if ownerless is None else ownerless,
        )
    return PipelineConfig(path, defaults, pipelines, default_ownerless)


def shell_command(line: str) -> tuple[str, ...]:
    """A command line given as one string runs in the shell, as cron runs its lines."""
    return (SHELL, "-c", line)


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: `{key}` must be a table")
    return value


def _check_keys(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _exec_values(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    _check_keys(table, allowed, where)
    values: dict[str, Any] = {}
    try:
        if "lock" in table:
            if not isinstance(table["lock"], bool):
                raise ValueError("`lock` must be true or false")
            values["lock"] = table["lock"]
        if "timeout" in table:
            values["timeout"] = parse_timeout(table["timeout"])  # 0 switches a default timeout off
        if "kill_after" in table:
            values["kill_after"] = parse_kill_after(table["kill_after"])
        if "tail" in table:
            values["tail"] = parse_tail(table["tail"])
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return values


def parse_timeout(value: object) -> float:
    """`timeout`: a duration from 0 (none) to 30 days; ValueError otherwise."""
    return _bounded_duration(value, "the timeout", MAX_TIMEOUT_S)


def parse_kill_after(value: object) -> float:
    """`kill_after`: a duration from 0 (SIGKILL at once) to 1 day; ValueError otherwise."""
    return _bounded_duration(value, "kill_after", MAX_KILL_AFTER_S)


def parse_tail(value: object) -> int:
    """`tail`: a size from 0 (none) to 1 MB; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    try:
        size = parse_size(value)
    except OverflowError:  # so many digits that they make infinity
        size = MAX_TAIL_BYTES + 1
    if size > MAX_TAIL_BYTES:
        raise ValueError(f"the output tail is at most {MAX_TAIL_BYTES // 1024 // 1024}MB, not {value!r}")
    return size


def _bounded_duration(value: object, what: str, maximum: float) -> float:
    # NaN and infinity are refused here: they parse as numbers, and NaN's own message would call it negative.
    if isinstance(value, bool) or _not_finite(value):
        raise ValueError(f"not a duration: {value!r} (use e.g. 90, 90s, 30m, 2h, 1h30m)")
    seconds = parse_duration(value)
    if seconds > maximum:
        raise ValueError(f"{what} is at most {format_duration(maximum)}, not {value!r}")
    return seconds


def _not_finite(value: object) -> bool:
    """A number (or text of one) that is NaN or infinite; False for everything else, durations like "2h" too."""
    try:
        return not math.isfinite(float(value))  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        return True
    except (TypeError, ValueError):
        return False


def _ownerless(table: dict[str, Any], where: str, instead: str) -> float | None:
    if "ownerless_timeout" not in table:
        return None
    raw = table["ownerless_timeout"]
    return config.checked_ownerless_timeout(raw, f"ownerless_timeout={config.shown(raw)} in {where}", instead)


def _command(value: object, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return shell_command(value)
    if isinstance(value, list) and value and all(isinstance(part, str) for part in value):
        return tuple(value)
    raise ConfigError(f"{where}: `command` must be a non-empty list of strings, or a shell command line")
