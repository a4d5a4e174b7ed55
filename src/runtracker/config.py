"""Settings: where the database is and how the tracker behaves, from arguments, then the environment, then defaults."""

from __future__ import annotations

import logging
import os

from .clock import iso, now_ms
from .records import Record

log = logging.getLogger("runtracker")

DEFAULT_DB_PATH = os.path.join("data", "dashboard.sqlite")
DB_ENV = "RUNTRACKER_DB"
RETENTION_ENV = "RUNTRACKER_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 3
HEARTBEAT_ENV = "RUNTRACKER_HEARTBEAT_S"
DEFAULT_HEARTBEAT_S = 10.0
HEARTBEAT_TIMEOUT_ENV = "RUNTRACKER_HEARTBEAT_TIMEOUT_S"
DEFAULT_HEARTBEAT_TIMEOUT_S = 60.0


class DatabaseURL(Record):
    """A resolved database location: `sqlite` with a file path, or `postgresql` with a libpq DSN."""

    __slots__ = ("scheme", "target")

    def __init__(self, scheme: str, target: str) -> None:
        self.scheme = scheme
        self.target = target

    def __str__(self) -> str:
        return self.target if self.scheme == "postgresql" else f"sqlite:///{self.target}"


def resolve_db(db: object = None) -> DatabaseURL:
    """`db` argument, else $RUNTRACKER_DB, else ./data/dashboard.sqlite. Plain paths and sqlite:/// URLs work."""
    raw = os.fspath(db) if isinstance(db, str | os.PathLike) else None
    if db is not None and raw is None:
        raise TypeError(f"db must be a path or URL, not {type(db).__name__}")
    if not raw:
        raw = os.environ.get(DB_ENV) or DEFAULT_DB_PATH
    if isinstance(raw, bytes):
        raw = raw.decode()
    if raw.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return DatabaseURL("postgresql", raw.replace("postgresql+psycopg://", "postgresql://", 1))
    if raw.startswith("sqlite:///"):
        raw = raw[len("sqlite:///") :] or DEFAULT_DB_PATH
    elif raw.startswith("sqlite://"):
        raw = raw[len("sqlite://") :] or DEFAULT_DB_PATH
    return DatabaseURL("sqlite", os.path.abspath(raw))


def retention_days(value: object = None) -> int:
    if value is None:
        value = os.environ.get(RETENTION_ENV, DEFAULT_RETENTION_DAYS)
    try:
        days = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return DEFAULT_RETENTION_DAYS
    return max(days, 0)


def retention_cutoff(days: int) -> str | None:
    """The started_at before which finished runs are deleted; None when retention is off (0 days)."""
    return iso(now_ms() - days * 86_400_000) if days > 0 else None


def heartbeat_interval_s(value: object = None) -> float:
    """How often open runs get a fresh `heartbeat_at`: argument, else $RUNTRACKER_HEARTBEAT_S, else 10 s."""
    return _positive(value, HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S)


def heartbeat_timeout_s(value: object = None) -> float:
    """How old another host's heartbeat may get before its run is lost: argument, else
    $RUNTRACKER_HEARTBEAT_TIMEOUT_S, else 60 s."""
    return _positive(value, HEARTBEAT_TIMEOUT_ENV, DEFAULT_HEARTBEAT_TIMEOUT_S)


def _positive(value: object, env: str, default: float) -> float:
    if value is None:
        value = os.environ.get(env) or default
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        log.warning("runtracker: %s=%r is not a number of seconds; using %g", env, value, default)
        return default
    if not seconds > 0 or seconds == float("inf"):
        log.warning("runtracker: %s=%r must be a positive number of seconds; using %g", env, value, default)
        return default
    return seconds
