"""What the error browser is asked for (`ErrorFilter`), shared by its reads (`search.ErrorSearch`) and by clearing
errors (`runs.Runs.clear_errors`): the filter, which index drives a walk of it, and its text condition."""

from __future__ import annotations

from ..base.records import Record

# Error query modes: which index drives the walk.
BY_MEMBER = "member"
BY_PIPELINE = "pipeline"
BY_STEP = "step"
BY_TIME = "time"


class ErrorFilter(Record):
    """What the error browser is asked for. Empty strings count as not given. `since`/`until` bound
    `created_at` (ISO text, `until` exclusive); `text` is a case-insensitive substring of the message."""

    __slots__ = ("pipeline", "step", "member", "text", "since", "until")

    def __init__(self, pipeline: str | None = None, step: str | None = None, member: str | None = None,
                 text: str | None = None, since: str | None = None, until: str | None = None) -> None:
        self.pipeline = pipeline or None
        self.step = step or None
        self.member = member or None
        self.text = text or None
        self.since = since or None
        self.until = until or None

    @property
    def mode(self) -> str:
        """The index that drives the walk: the most selective filter that one serves."""
        if self.member:
            return BY_MEMBER
        if self.pipeline:
            return BY_PIPELINE
        if self.step:
            return BY_STEP
        return BY_TIME

    def any(self) -> bool:
        return any(self.fields().values())


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own `%`, `_` and `\\` taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def like(dialect: str, column: str) -> str:
    """The condition `column` matches a `like_pattern`, case-insensitive on both backends: SQLite's LIKE already
    is (for ASCII), PostgreSQL's is not."""
    operator = "ILIKE" if dialect == "postgresql" else "LIKE"
    return f"{column} {operator} ? ESCAPE '\\'"
