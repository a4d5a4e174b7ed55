"""What the pipeline config file (runtracker.toml; read by `settings.configfile`) says, as values: each pipeline's
command and how `runtracker exec` runs it (`ExecSettings`), what the monitor watches (`Watch`), the alert
channels, and the [redact] table. The defaults and limits of `runtracker exec`'s options are here too: the
command line and the file check them with the same functions (`parse_timeout`, `parse_kill_after`,
`parse_tail`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from ..base.events import DEFAULT_EVENTS
from ..base.schedule import Schedule
from ..base.units import format_duration, parse_duration, parse_size

SHELL = "/bin/sh"

DEFAULT_TAIL_BYTES = 10 * 1024
MAX_TAIL_BYTES = 1024 * 1024
DEFAULT_KILL_AFTER_S = 10.0
MAX_TIMEOUT_S = 30 * 86400.0
MAX_KILL_AFTER_S = 86400.0
DEFAULT_GRACE_S = 4 * 3600.0
MAX_GRACE_S = 30 * 86400.0
DEFAULT_OVERDUE_REPEAT_S = 4 * 3600.0
MIN_OVERDUE_REPEAT_S = 60.0

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
class Watch:
    """What the monitor watches for a pipeline, and whom it tells. `channels` None: every channel."""

    schedule: Schedule | None = None
    timezone: str = "UTC"
    grace_s: float = DEFAULT_GRACE_S
    max_runtime_s: float | None = None
    channels: tuple[str, ...] | None = None
    events: frozenset[str] = DEFAULT_EVENTS


@dataclass(frozen=True)
class Pipeline:
    name: str
    command: tuple[str, ...] | None = None
    settings: ExecSettings = field(default_factory=ExecSettings)
    # Its own `ownerless_timeout`, else the one of [defaults]; None: the global one (values.ownerless_timeout_s).
    ownerless_timeout_s: float | None = None
    display_name: str | None = None
    description: str | None = None
    watch: Watch = field(default_factory=Watch)

    @property
    def title(self) -> str:
        """The name people read: `display_name`, else the pipeline's name."""
        return self.display_name or self.name


@dataclass(frozen=True)
class Channel:
    """A named alert channel: one or more Apprise URLs, and where the file declares it (for messages)."""

    name: str
    urls: tuple[str, ...]
    where: str = ""


@dataclass(frozen=True)
class AlertSettings:
    channels: dict[str, Channel] = field(default_factory=dict)
    dashboard_url: str | None = None
    overdue_repeat_s: float = DEFAULT_OVERDUE_REPEAT_S


@dataclass(frozen=True)
class PipelineConfig:
    path: str | None = None
    defaults: ExecSettings = field(default_factory=ExecSettings)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    default_ownerless_timeout_s: float | None = None  # `ownerless_timeout` in [defaults]
    default_watch: Watch = field(default_factory=Watch)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    # [redact]: None where the file says nothing (the environment's setting, else on; no extra patterns).
    redact_enabled: bool | None = None
    redact_patterns: tuple[str, ...] = ()
    # The line of each table and key in the file (`place`), for `runtracker config show`.
    lines: dict[tuple[str, ...], int] = field(default_factory=dict, compare=False, repr=False)
    # [dashboard] timezone as the file gives it (None: not given); settings/display checks it.
    display_timezone: object = None

    def pipeline(self, name: str) -> Pipeline:
        """The configured pipeline, or one with the defaults and no command."""
        return self.pipelines.get(name) or Pipeline(name, None, self.defaults, self.default_ownerless_timeout_s,
                                                    watch=self.default_watch)

    def ownerless_timeout_s(self, pipeline: str) -> float | None:
        """Seconds a run of `pipeline` that records no owner may run before the reaper judges it lost: the
        pipeline's own `ownerless_timeout`, else the one in [defaults], else None (use
        `values.ownerless_timeout_s()`)."""
        return self.pipeline(pipeline).ownerless_timeout_s

    def channels_for(self, pipeline: str) -> list[Channel]:
        """The channels that `pipeline`'s alerts go to: its `alerts`, else those of [defaults], else every one."""
        names = self.pipeline(pipeline).watch.channels
        channels = self.alerts.channels
        return list(channels.values()) if names is None else [channels[n] for n in names if n in channels]

    def place(self, *path: str) -> str:
        """`runtracker.toml:12`: where a table or key (or, failing that, its table) is in the file."""
        line = next((self.lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in self.lines), None)
        return f"{self.path}:{line}" if line is not None else str(self.path)

    def scheduled(self) -> list[Pipeline]:
        """The pipelines that have a schedule or a maximum runtime: those the monitor evaluates each pass."""
        return [p for p in self.pipelines.values()
                if p.watch.schedule is not None or p.watch.max_runtime_s is not None]


def shell_command(line: str) -> tuple[str, ...]:
    """A command line given as one string runs in the shell, as cron runs its lines."""
    return (SHELL, "-c", line)


def parse_timeout(value: object) -> float:
    """`timeout`: a duration from 0 (none) to 30 days; ValueError otherwise."""
    return bounded_duration(value, "the timeout", MAX_TIMEOUT_S)


def parse_kill_after(value: object) -> float:
    """`kill_after`: a duration from 0 (SIGKILL at once) to 1 day; ValueError otherwise."""
    return bounded_duration(value, "kill_after", MAX_KILL_AFTER_S)


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


def bounded_duration(value: object, what: str, maximum: float) -> float:
    """A duration from 0 to `maximum`; ValueError (naming `what`) otherwise."""
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


