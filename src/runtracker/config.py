"""Where the database is and how the tracker behaves, from arguments, then the environment, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT_DB_PATH = os.path.join("data", "dashboard.sqlite")
DB_ENV = "RUNTRACKER_DB"
RETENTION_ENV = "RUNTRACKER_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 3


@dataclass(frozen=True)
class DatabaseURL:
    """A resolved database location: `sqlite` with a file path, or `postgresql` with a libpq DSN."""

    scheme: str
    target: str

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
    return iso(datetime.now(UTC) - timedelta(days=days)) if days > 0 else None


def now_iso() -> str:
    """The current UTC time as ISO-8601 with milliseconds and a Z, sortable as text."""
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
