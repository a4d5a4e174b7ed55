"""The library's settings: where the database is and how the tracker behaves, from an argument, else the
environment, else a default. One function per setting gives its value (`retention_days(value=None)`); the
`Setting` behind it, with where it came from, is `setting(name, value=None)`.

Every value is checked against its range (docs/settings.md, "Wrong values"). A wrong one is never silently
honoured nor silently reinterpreted: it gets one warning on the `runtracker` logger naming the setting, where it
came from, the value and what is used instead, and the safe value is used (retention: keep everything). Nothing
here raises into a pipeline; only `resolve_db` raises, for a database nobody can mean, and the tracker's guard
logs that at `start_run`.

This module also gives the redaction rules (base/redact) their settings: the base layer imports nothing above
it, so it is told where they come from (`redact.take_settings_from`) when this module is imported, which
`import runtracker` does.
"""

from __future__ import annotations

import os
import re

from ..base import redact
from ..base.clock import iso, now_ms
from ..base.records import Record
from . import checks
from .checks import redact_pattern_problem, shown
from .state import ARGUMENT, DEFAULT, ENVIRONMENT, SETTINGS, Setting, environment

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from collections.abc import Callable

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

# Where faulthandler files go (core/crashfile.crash_dir), and the host name runs record (core/liveness).
CRASH_DIR_ENV = "RUNTRACKER_CRASH_DIR"
HOSTNAME_ENV = "RUNTRACKER_HOSTNAME"

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
        raw = environment(DB_ENV) or DEFAULT_DB_PATH
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


def database(db: object = None) -> Setting:
    """The database as a Setting: the argument, else $RUNTRACKER_DB, else the default; one nobody can mean has
    no value, and the error `resolve_db` raises for it as its warning."""
    if db is not None:
        source, where, raw = ARGUMENT, "db=", db
    elif environment(DB_ENV):
        source, where, raw = ENVIRONMENT, DB_ENV, environment(DB_ENV)
    else:
        source, where, raw = DEFAULT, "", None
    try:
        return Setting("db", resolve_db(db), source, where, raw)
    except (TypeError, ValueError) as exc:
        return Setting("db", None, source, where, raw, (str(exc),))


def retention_days(value: object = None) -> int:
    """Days of finished runs to keep: argument, else $RUNTRACKER_RETENTION_DAYS, else 3; 0 keeps everything.

    Anything but a whole number from 0 to MAX_RETENTION_DAYS keeps everything (0), with a warning: a mistake
    must never delete history."""
    return _value("retention_days", value)  # type: ignore[return-value]


def retention_cutoff(days: int) -> str | None:
    """The started_at before which finished runs are deleted; None when retention is off (0 days)."""
    return iso(now_ms() - days * 86_400_000) if days > 0 else None


def heartbeat_interval_s(value: object = None) -> float:
    """How often open runs get a fresh `heartbeat_at`: argument, else $RUNTRACKER_HEARTBEAT_S, else 10 s;
    from 0.1 s to 1 h."""
    return _value("heartbeat_s", value)  # type: ignore[return-value]


def heartbeat_timeout_s(value: object = None) -> float:
    """How old another host's heartbeat may get before its run is lost: argument, else
    $RUNTRACKER_HEARTBEAT_TIMEOUT_S, else 60 s; more than 0, at most 7 days."""
    return _value("heartbeat_timeout_s", value)  # type: ignore[return-value]


def log_lines(value: object = None) -> int:
    """How many of the process's last log records a crash row gets: argument, else $RUNTRACKER_LOG_LINES, else
    50; 0 keeps none (the log ring is not installed), at most 1,000. A wrong value is the default, 50."""
    return _value("log_lines", value)  # type: ignore[return-value]


def record_log_errors(value: object = None) -> bool:
    """Whether an ERROR log record during a run becomes one of its error rows: argument (True/False), else
    $RUNTRACKER_RECORD_LOG_ERRORS (1/0, true/false, yes/no, on/off), else off. A wrong value is off."""
    return _value("record_log_errors", value)  # type: ignore[return-value]


def ownerless_timeout_s(value: object = None) -> float:
    """How long a `running` run that records no owner (no hostname, pid or heartbeat: the original tool's) may
    run before the reaper judges it lost: argument, else $RUNTRACKER_OWNERLESS_TIMEOUT, else 6 h. A duration
    (`6h`, `90m`, `1h30m`) or a number of seconds; more than 0, at most 365 days."""
    return _value("ownerless_timeout_s", value)  # type: ignore[return-value]


def checked_ownerless_timeout(raw: object, where: str, instead: str | None = None) -> float | None:
    """An ownerless timeout from anywhere (the config file too), or None with a warning saying `where` it came
    from and what is used `instead` (default: 6 h)."""
    seconds, problem, safe = _check_ownerless(raw)
    if problem is not None:
        refuse(where, problem, instead or safe)
        return None
    return seconds  # type: ignore[return-value]


def redact_enabled() -> bool:
    """Whether secrets are redacted from recorded text: $RUNTRACKER_REDACT (1/0, true/false, yes/no, on/off),
    else on. A wrong value keeps it on, with a warning: a typo must not store secrets."""
    return _value("redact", None)  # type: ignore[return-value]


def redact_patterns() -> list[str]:
    """The extra redaction patterns of $RUNTRACKER_REDACT_PATTERNS: one regular expression per line. A wrong one
    is left out, with a warning; the others and the built-in patterns apply."""
    return list(_value("redact_patterns", None))  # type: ignore[call-overload]


def crash_dir() -> str | None:
    """$RUNTRACKER_CRASH_DIR, made absolute; None: the database's directory (core/crashfile.crash_dir)."""
    configured = environment(CRASH_DIR_ENV)
    return os.path.abspath(configured) if configured else None


def hostname() -> str | None:
    """$RUNTRACKER_HOSTNAME: the host name runs record instead of the OS's (containers, tests); None if unset."""
    return environment(HOSTNAME_ENV) or None


def child_environment() -> dict[str, str]:
    """This process's redaction settings as environment variables, for a command `runtracker exec` starts: a
    Python child that joins the run redacts as the wrapper does, [redact] of the config file included."""
    return {REDACT_ENV: "on" if redact.enabled() else "off", REDACT_PATTERNS_ENV: "\n".join(redact.patterns())}


# -- refusing a wrong value ---------------------------------------------------------------------------------
def refuse(where: str, problem: str, instead: str) -> None:
    """Warn, once per process, that the value at `where` (e.g. "RUNTRACKER_HEARTBEAT_S='0' (environment
    variable)") is `problem` and that `instead` is used. Never raises."""
    SETTINGS.refuse(_refusal(where, problem, instead))


def forget_warnings() -> None:
    """Warn again about values already warned about (tests, between tests)."""
    SETTINGS.warned.clear()


def _refusal(where: str, problem: str, instead: str) -> str:
    return f"runtracker: {where} is {problem}; using {instead}"


# -- each setting, resolved ---------------------------------------------------------------------------------
def setting(name: str, value: object = None) -> Setting:
    """The setting `name` (a key of SPEC): the argument `value`, else its environment variable when
    set and not blank, else its default; checked, with where it came from. Warns nobody (see `_value`)."""
    env, default, check = SPEC[name]
    if value is not None:
        return _checked(name, value, ARGUMENT, f"{name}=", f"{name}={shown(value)} (argument)", check)
    text = environment(env)
    if not text.strip():
        return Setting(name, default)
    memo = SETTINGS.resolved.get(name)
    if memo is not None and memo[0] == text:
        return memo[1]
    found = _checked(name, text, ENVIRONMENT, env, f"{env}={shown(text)} (environment variable)", check)
    SETTINGS.resolved[name] = (text, found)
    return found


def _value(name: str, value: object) -> object:
    """The setting's value, its warnings given (once per process)."""
    found = setting(name, value)
    if found.warnings:
        SETTINGS.warn(found)
    return found.value


# What a check of one value gives: (the value to use, what is wrong or None, what is used instead, as the
# warning says it).
Checked = tuple[object, str | None, str]


def _checked(name: str, raw: object, source: str, where: str, label: str,
             check: Callable[[object, str], tuple[object, tuple[str, ...]]]) -> Setting:
    used, warnings = check(raw, label)  # the value to use, and a warning per wrong part, each naming `label`
    return Setting(name, used, source, where, raw, warnings)


def _one(check: Callable[[object], Checked]) -> Callable[[object, str], tuple[object, tuple[str, ...]]]:
    """A setting's check from the check of its one value."""
    def checked(raw: object, label: str) -> tuple[object, tuple[str, ...]]:
        used, problem, instead = check(raw)
        return used, () if problem is None else (_refusal(label, problem, instead),)

    return checked


def _check_retention(raw: object) -> Checked:
    days = checks.whole_number(raw)
    if days is None or not 0 <= days <= MAX_RETENTION_DAYS:
        return 0, f"not a whole number of days from 0 to {MAX_RETENTION_DAYS:,}", "0 (every run is kept)"
    return days, None, ""


def _seconds(default: float, low: float, high: float) -> Callable[[object], Checked]:
    """A check of a number of seconds above `low` (at least `low` when it is more than 0), at most `high`."""
    def check(raw: object) -> Checked:
        seconds = checks.number(raw)
        if seconds is None or not (low <= seconds if low > 0 else seconds > 0) or seconds > high:
            limits = f"from {low:g} to {high:g}" if low > 0 else f"above 0 and at most {high:g}"
            return default, f"not a number of seconds {limits}", checks.shown_seconds(default)
        return seconds, None, ""

    return check


def _check_log_lines(raw: object) -> Checked:
    lines = checks.whole_number(raw)
    if lines is None or not 0 <= lines <= MAX_LOG_LINES:
        return DEFAULT_LOG_LINES, f"not a whole number of lines from 0 to {MAX_LOG_LINES:,}", str(DEFAULT_LOG_LINES)
    return lines, None, ""


def _check_record_log_errors(raw: object) -> Checked:
    on = raw if isinstance(raw, bool) else checks.on_off(raw)
    if on is None:
        return False, "not on or off (True/False; 1/0, true/false, yes/no, on/off)", "off"
    return on, None, ""


def _check_ownerless(raw: object) -> Checked:
    seconds = checks.duration(raw)
    if seconds is None or not 0 < seconds <= MAX_OWNERLESS_TIMEOUT_S:
        return (DEFAULT_OWNERLESS_TIMEOUT_S, "not a duration above 0 and at most 365 days (e.g. 6h, 90m, 3600)",
                checks.shown_seconds(DEFAULT_OWNERLESS_TIMEOUT_S))
    return seconds, None, ""


def _check_redact(raw: object) -> Checked:
    on = checks.on_off(str(raw))
    if on is None:
        return True, "not on or off (1/0, true/false, yes/no, on/off)", "on (secrets are redacted)"
    return on, None, ""


def _check_patterns(raw: object, label: str) -> tuple[object, tuple[str, ...]]:
    """The lines of $RUNTRACKER_REDACT_PATTERNS: a wrong one is left out, with its own warning."""
    patterns, warnings = [], []
    for line in str(raw).splitlines():
        if not line.strip():
            continue
        problem = redact_pattern_problem(line)
        if problem is not None:
            warnings.append(_refusal(f"{REDACT_PATTERNS_ENV} line {shown(line)} (environment variable)", problem,
                                     "the other patterns"))
            continue
        patterns.append(line)
    return tuple(patterns), tuple(warnings)


# name -> (environment variable, default, check). The names are the RunTracker arguments' where there is one.
SPEC: dict[str, tuple[str, object, Callable[[object, str], tuple[object, tuple[str, ...]]]]] = {
    "retention_days": (RETENTION_ENV, DEFAULT_RETENTION_DAYS, _one(_check_retention)),
    "heartbeat_s": (HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S,
                    _one(_seconds(DEFAULT_HEARTBEAT_S, MIN_HEARTBEAT_S, MAX_HEARTBEAT_S))),
    "heartbeat_timeout_s": (HEARTBEAT_TIMEOUT_ENV, DEFAULT_HEARTBEAT_TIMEOUT_S,
                            _one(_seconds(DEFAULT_HEARTBEAT_TIMEOUT_S, 0.0, MAX_HEARTBEAT_TIMEOUT_S))),
    "log_lines": (LOG_LINES_ENV, DEFAULT_LOG_LINES, _one(_check_log_lines)),
    "record_log_errors": (RECORD_LOG_ERRORS_ENV, False, _one(_check_record_log_errors)),
    "ownerless_timeout_s": (OWNERLESS_TIMEOUT_ENV, DEFAULT_OWNERLESS_TIMEOUT_S, _one(_check_ownerless)),
    "redact": (REDACT_ENV, True, _one(_check_redact)),
    "redact_patterns": (REDACT_PATTERNS_ENV, (), _check_patterns),
}


def _redaction() -> tuple[bool, list[str]]:
    return redact_enabled(), redact_patterns()


redact.take_settings_from(_redaction)
