"""Settings: where the database is and how the tracker behaves, from arguments, then the environment, then defaults.

Every value is checked against its range (docs/settings.md, "Wrong values"). A wrong one is never silently
honoured nor silently reinterpreted: it gets one warning on the `runtracker` logger naming the setting, where it
came from, the value and what is used instead, and the safe value is used (retention: keep everything). Nothing
here raises into a pipeline; only `resolve_db` raises, for a database nobody can mean, and the tracker's guard
logs that at `start_run`.
"""

from __future__ import annotations

import logging
import math
import operator
import os
import re

from .base.clock import iso, now_ms
from .base.records import Record
from .base.units import parse_duration

log = logging.getLogger("runtracker")

DEFAULT_DB_PATH = os.path.join("data", "dashboard.sqlite")
DB_ENV = "RUNTRACKER_DB"

RETENTION_ENV = "RUNTRACKER_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 3
MAX_RETENTION_DAYS = 36_500  # a hundred years; far more would put the cutoff before year 1

HEARTBEAT_ENV = "RUNTRACKER_HEARTBEAT_S"
DEFAULT_HEARTBEAT_S = 10.0
MIN_HEARTBEAT_S = 0.1  # more often burns CPU for nothing
MAX_HEARTBEAT_S = 3600.0  # rarer makes the heartbeat timeout meaningless

HEARTBEAT_TIMEOUT_ENV = "RUNTRACKER_HEARTBEAT_TIMEOUT_S"
DEFAULT_HEARTBEAT_TIMEOUT_S = 60.0
# Any positive timeout is allowed: a tiny one (`reap --heartbeat-timeout 0.000001`) means "every run of another
# host that is not beating right now".
MAX_HEARTBEAT_TIMEOUT_S = 7 * 86400.0

# The last log lines a crash row gets (logring.py): how many; whether an ERROR log record becomes an error row.
LOG_LINES_ENV = "RUNTRACKER_LOG_LINES"
DEFAULT_LOG_LINES = 50
MAX_LOG_LINES = 1000
RECORD_LOG_ERRORS_ENV = "RUNTRACKER_RECORD_LOG_ERRORS"

OWNERLESS_TIMEOUT_ENV = "RUNTRACKER_OWNERLESS_TIMEOUT"
DEFAULT_OWNERLESS_TIMEOUT_S = 6 * 3600.0
MAX_OWNERLESS_TIMEOUT_S = 365 * 86400.0

REDACT_ENV = "RUNTRACKER_REDACT"
REDACT_PATTERNS_ENV = "RUNTRACKER_REDACT_PATTERNS"
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")

# `runtracker monitor --interval`; its default is `monitor.loop.DEFAULT_MONITOR_INTERVAL_S`.
MIN_MONITOR_INTERVAL_S = 0.1
MAX_MONITOR_INTERVAL_S = 86400.0

ACCEPTED_DATABASES = (
    "a path, sqlite:///relative/path, sqlite:////absolute/path, or postgresql://... "
    "(also postgres:// and postgresql+psycopg://)"
)
UNKNOWN_SCHEME = "unknown database URL scheme {scheme!r}; use " + ACCEPTED_DATABASES
_POSTGRES_PREFIXES = ("postgresql://", "postgres://", "postgresql+psycopg://")
# A name that starts like a URL (`mysql://`, `file:/x`, `postgresq://`) is a URL we do not support, not a
# relative file path: tracking must not go to a stray local file. One letter is left alone (`C:/` on Windows),
# and `./name` is always a path.
# Patterns as text, compiled (and cached by `re`) at their first use: compiling at import is a tenth of
# `import runtracker`.
_URL_LIKE = r"^([A-Za-z][A-Za-z0-9+.-]+):/"
_POSTGRES_LIKE = r"(?i)^(postgres[A-Za-z0-9+.-]*):"
# libpq's `host=db dbname=runs` form: a connection string, not a file name.
_KEYWORDS = r"(?i)^\s*(host|hostaddr|dbname|user|port|password|service)\s*="
KEYWORD_DSN = "a libpq key=value connection string is not accepted; write it as a postgresql:// URL"


class DatabaseURL(Record):
    """A resolved database location: `sqlite` with a file path, or `postgresql` with a libpq DSN."""

    __slots__ = ("scheme", "target")

    def __init__(self, scheme: str, target: str) -> None:
        self.scheme = scheme
        self.target = target

    def __str__(self) -> str:
        return self.target if self.scheme == "postgresql" else f"sqlite:///{self.target}"


def resolve_db(db: object = None) -> DatabaseURL:
    """`db` argument, else $RUNTRACKER_DB, else ./data/dashboard.sqlite. Plain paths, sqlite: and postgresql://
    URLs work; any other URL is a ValueError naming what is accepted, a value of another type a TypeError."""
    raw = os.fspath(db) if isinstance(db, str | os.PathLike) else None
    if db is not None and raw is None:
        raise TypeError(f"db must be a path or URL, not {type(db).__name__}")
    if not raw:
        raw = os.environ.get(DB_ENV) or DEFAULT_DB_PATH
    if isinstance(raw, bytes):
        raw = raw.decode()
    if raw.startswith(_POSTGRES_PREFIXES):
        return DatabaseURL("postgresql", raw.replace("postgresql+psycopg://", "postgresql://", 1))
    if raw.startswith("sqlite:"):
        # sqlite:///relative, sqlite:////absolute, and the looser sqlite://path and sqlite:path.
        raw = raw[len("sqlite:") :]
        raw = raw[3:] if raw.startswith("///") else raw[2:] if raw.startswith("//") else raw
        return DatabaseURL("sqlite", os.path.abspath(raw or DEFAULT_DB_PATH))
    url = re.match(_URL_LIKE, raw) or re.match(_POSTGRES_LIKE, raw)
    if url is not None:
        raise ValueError(UNKNOWN_SCHEME.format(scheme=url.group(1)))
    if re.match(_KEYWORDS, raw):
        raise ValueError(KEYWORD_DSN)
    return DatabaseURL("sqlite", os.path.abspath(raw))


def retention_days(value: object = None) -> int:
    """Days of finished runs to keep: argument, else $RUNTRACKER_RETENTION_DAYS, else 3; 0 keeps everything.

    Anything but a whole number from 0 to MAX_RETENTION_DAYS keeps everything (0), with a warning: a mistake
    must never delete history."""
    found = _given(value, "retention_days", RETENTION_ENV)
    if found is None:
        return DEFAULT_RETENTION_DAYS
    raw, where = found
    days = _whole_number(raw)
    if days is None or not 0 <= days <= MAX_RETENTION_DAYS:
        refuse(where, f"not a whole number of days from 0 to {MAX_RETENTION_DAYS:,}", "0 (every run is kept)")
        return 0
    return days


def retention_cutoff(days: int) -> str | None:
    """The started_at before which finished runs are deleted; None when retention is off (0 days)."""
    return iso(now_ms() - days * 86_400_000) if days > 0 else None


def heartbeat_interval_s(value: object = None) -> float:
    """How often open runs get a fresh `heartbeat_at`: argument, else $RUNTRACKER_HEARTBEAT_S, else 10 s;
    from 0.1 s to 1 h."""
    return _seconds_setting(value, "heartbeat_s", HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S,
                            MIN_HEARTBEAT_S, MAX_HEARTBEAT_S)


def heartbeat_timeout_s(value: object = None) -> float:
    """How old another host's heartbeat may get before its run is lost: argument, else
    $RUNTRACKER_HEARTBEAT_TIMEOUT_S, else 60 s; more than 0, at most 7 days."""
    return _seconds_setting(value, "heartbeat_timeout_s", HEARTBEAT_TIMEOUT_ENV, DEFAULT_HEARTBEAT_TIMEOUT_S,
                            0.0, MAX_HEARTBEAT_TIMEOUT_S)


def log_lines(value: object = None) -> int:
    """How many of the process's last log records a crash row gets: argument, else $RUNTRACKER_LOG_LINES, else
    50; 0 keeps none (the log ring is not installed), at most 1,000. A wrong value is the default, 50."""
    found = _given(value, "log_lines", LOG_LINES_ENV)
    if found is None:
        return DEFAULT_LOG_LINES
    raw, where = found
    lines = _whole_number(raw)
    if lines is None or not 0 <= lines <= MAX_LOG_LINES:
        refuse(where, f"not a whole number of lines from 0 to {MAX_LOG_LINES:,}", str(DEFAULT_LOG_LINES))
        return DEFAULT_LOG_LINES
    return lines


def record_log_errors(value: object = None) -> bool:
    """Whether an ERROR log record during a run becomes one of its error rows: argument (True/False), else
    $RUNTRACKER_RECORD_LOG_ERRORS (1/0, true/false, yes/no, on/off), else off. A wrong value is off."""
    found = _given(value, "record_log_errors", RECORD_LOG_ERRORS_ENV)
    if found is None:
        return False
    raw, where = found
    if isinstance(raw, bool):
        return raw
    word = raw.strip().lower() if isinstance(raw, str) else None
    if word in _ON or word in _OFF:
        return word in _ON
    refuse(where, "not on or off (True/False; 1/0, true/false, yes/no, on/off)", "off")
    return False


def ownerless_timeout_s(value: object = None) -> float:
    """How long a `running` run that records no owner (no hostname, pid or heartbeat: the original tool's) may
    run before the reaper judges it lost: argument, else $RUNTRACKER_OWNERLESS_TIMEOUT, else 6 h. A duration
    (`6h`, `90m`, `1h30m`) or a number of seconds; more than 0, at most 365 days."""
    found = _given(value, "ownerless_timeout_s", OWNERLESS_TIMEOUT_ENV)
    if found is None:
        return DEFAULT_OWNERLESS_TIMEOUT_S
    seconds = checked_ownerless_timeout(*found)
    return DEFAULT_OWNERLESS_TIMEOUT_S if seconds is None else seconds


def checked_ownerless_timeout(raw: object, where: str, instead: str | None = None) -> float | None:
    """An ownerless timeout from anywhere (the config file too), or None with a warning saying `where` it came
    from and what is used `instead` (default: 6 h)."""
    seconds = _duration(raw)
    if seconds is None or not 0 < seconds <= MAX_OWNERLESS_TIMEOUT_S:
        refuse(where, "not a duration above 0 and at most 365 days (e.g. 6h, 90m, 3600)",
               instead or _shown_seconds(DEFAULT_OWNERLESS_TIMEOUT_S))
        return None
    return seconds


def redact_enabled() -> bool:
    """Whether secrets are redacted from recorded text: $RUNTRACKER_REDACT (1/0, true/false, yes/no, on/off),
    else on. A wrong value keeps it on, with a warning: a typo must not store secrets."""
    found = _given(None, "redact", REDACT_ENV)
    if found is None:
        return True
    raw, where = found
    word = str(raw).strip().lower()
    if word in _ON or word in _OFF:
        return word in _ON
    refuse(where, "not on or off (1/0, true/false, yes/no, on/off)", "on (secrets are redacted)")
    return True


def redact_patterns() -> list[str]:
    """The extra redaction patterns of $RUNTRACKER_REDACT_PATTERNS: one regular expression per line. A wrong one
    is left out, with a warning; the others and the built-in patterns apply."""
    raw = os.environ.get(REDACT_PATTERNS_ENV, "")
    patterns = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        problem = redact_pattern_problem(line)
        if problem is not None:
            refuse(f"{REDACT_PATTERNS_ENV} line {shown(line)} (environment variable)", problem,
                   "the other patterns")
            continue
        patterns.append(line)
    return patterns


def redact_pattern_problem(pattern: object) -> str | None:
    """None if `pattern` can be an extra redaction pattern, else what is wrong with it."""
    if not isinstance(pattern, str) or not pattern:
        return "not a regular expression (a non-empty string)"
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression ({exc})"
    if compiled.search("") is not None:
        return "a regular expression that matches empty text (it would put *** everywhere)"
    return None


# -- refusing a wrong value ---------------------------------------------------------------------------------
# The warnings already given in this process. A setting read at every RunTracker() (an environment variable)
# would otherwise repeat its warning for every run; one warning per wrong value per process is enough. A few
# hundred distinct wrong values is already a flood: past that, they are not remembered (nor repeated).
_warned: set[str] = set()
_WARNED_MAX = 256


def refuse(where: str, problem: str, instead: str) -> None:
    """Warn, once per process, that the value at `where` (e.g. "RUNTRACKER_HEARTBEAT_S='0' (environment
    variable)") is `problem` and that `instead` is used. Never raises."""
    message = f"runtracker: {where} is {problem}; using {instead}"
    if message in _warned or len(_warned) >= _WARNED_MAX:
        return
    _warned.add(message)
    try:
        log.warning("%s", message)
    except Exception:  # logging can fail (a closed stderr); the safe value is used all the same
        pass


def forget_warnings() -> None:
    """Warn again about values already warned about (tests, between tests)."""
    _warned.clear()


def shown(value: object) -> str:
    """A value as a warning shows it: its repr, cut short."""
    try:
        text = repr(value)
    except Exception:  # a __repr__ that raises must not cost the warning
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _given(value: object, argument: str, env: str) -> tuple[object, str] | None:
    """The value to check and where it came from: the argument, else the environment variable when it is set
    and not blank; None means the default."""
    if value is not None:
        return value, f"{argument}={shown(value)} (argument)"
    raw = os.environ.get(env, "")
    if raw.strip():
        return raw, f"{env}={shown(raw)} (environment variable)"
    return None


def _seconds_setting(value: object, argument: str, env: str, default: float, low: float, high: float) -> float:
    """A number of seconds above `low` (at least `low` when it is more than 0) and at most `high`."""
    found = _given(value, argument, env)
    if found is None:
        return default
    raw, where = found
    seconds = _number(raw)
    within = seconds is not None and (low <= seconds if low > 0 else seconds > 0) and seconds <= high
    if not within:
        limits = f"from {low:g} to {high:g}" if low > 0 else f"above 0 and at most {high:g}"
        refuse(where, f"not a number of seconds {limits}", _shown_seconds(default))
        return default
    assert seconds is not None
    return seconds


def _number(raw: object) -> float | None:
    """A finite float from a number or text; None for anything else (True is not a number here)."""
    if isinstance(raw, bool):
        return None
    try:
        number = float(raw)  # type: ignore[arg-type]
    except Exception:  # float() of an arbitrary object can raise anything
        return None
    return number if math.isfinite(number) else None


def _whole_number(raw: object) -> int | None:
    """An int from an int, a float without a fraction, or digits; None for anything else."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw) if math.isfinite(raw) and raw.is_integer() else None
    if isinstance(raw, str):
        return int(raw) if re.fullmatch(r"\s*\d{1,12}\s*", raw) else None
    try:
        return operator.index(raw)  # type: ignore[arg-type]  # numpy's integers, for one
    except Exception:
        return None


def _duration(raw: object) -> float | None:
    """Seconds from a duration (`6h`, `1h30m`) or a number; None for anything else, NaN and infinity too."""
    if isinstance(raw, bool):
        return None
    try:
        seconds = parse_duration(raw)
    except Exception:
        return None
    return seconds if math.isfinite(seconds) else None


def _shown_seconds(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"
