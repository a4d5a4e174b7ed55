"""Grouping similar errors: "these 14 members fail every night" as one line.

Two errors are alike when their step is the same and their messages are the same once the parts that differ
from one occurrence to the next are replaced by placeholders: quoted strings, UUIDs, hexadecimal ids, and
numbers (member numbers like KNVB1004 included). Grouping happens here, over a bounded window of the latest
errors that match the filters (read by key from an index): the pipelines' write path (`record_errors`) does
no extra work for it, and the page says which window it grouped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

_QUOTED = re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\"|`[^`\n]{0,200}`")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
# One pass for the rest (each pass costs a microsecond or so per message): runs of 8+ hex digits, numbers.
# A hex run starts a word or follows a non-letter: in "KNVB1004821" the tail "B1004821" is eight hex digits too,
# and was shown as "KNV<hex>"; it is a member number, KNVB#.
_HEX_OR_NUMBER = re.compile(r"\b0[xX][0-9a-fA-F]+|(?<![A-Za-z])[0-9a-fA-F]{8,}|\d+(?:[.,]\d+)*")


def _placeholder(match: re.Match[str]) -> str:
    token = match.group()
    if token[:2] in ("0x", "0X"):
        return "<hex>"  # 0x7f3a
    if len(token) < 8 or token.isdigit():
        return "#"
    has_digit = any(c.isdigit() for c in token)
    if has_digit and any(c.isalpha() for c in token):
        return "<hex>"  # a hash, an object id: 5f3a9c1e22
    return "#" if has_digit else token  # 1.234.567 / a word that happens to be hex: `deadbeef`


@functools.lru_cache(maxsize=65536)
def normalise(message: str) -> str:
    """The message with its varying parts replaced: `'…'`, `<uuid>`, `<hex>`, `#`. Cached: a page grouping
    the same window again (its refresh every minute) normalises only the messages it has not seen.

    >>> normalise("member KNVB1004 not found (id 'abc', 3 tries)")
    "member KNVB# not found (id '…', # tries)"
    """
    text = message
    if "'" in text or '"' in text or "`" in text:
        text = _QUOTED.sub("'…'", text)
    if "-" in text:
        text = _UUID.sub("<uuid>", text)
    return _HEX_OR_NUMBER.sub(_placeholder, text)


class Group:
    """Errors alike: how many, when first and last seen, which runs, members and pipelines."""

    __slots__ = ("step_name", "pattern", "example", "count", "first_seen", "last_seen", "runs", "members",
                 "pipelines")

    def __init__(self, step_name: str, pattern: str, example: str) -> None:
        self.step_name = step_name
        self.pattern = pattern
        self.example = example  # the latest message of the group, as it was recorded
        self.count = 0
        self.first_seen = ""
        self.last_seen = ""
        self.runs: dict[int, None] = {}  # ordered sets: newest first
        self.members: dict[str, None] = {}
        self.pipelines: dict[str, None] = {}

    def as_json(self) -> dict[str, Any]:
        return {"step_name": self.step_name, "pattern": self.pattern, "example": self.example, "count": self.count,
                "first_seen": self.first_seen, "last_seen": self.last_seen, "runs": list(self.runs),
                "members": list(self.members), "pipelines": list(self.pipelines)}


def group(rows: Iterable[dict[str, Any]]) -> list[Group]:
    """Group error rows (newest first, as the window is read), the largest group first."""
    groups: dict[tuple[str, str], Group] = {}
    for row in rows:
        step = str(row["step_name"])
        message = str(row["error_message"])
        pattern = normalise(message)
        found = groups.get((step, pattern))
        if found is None:
            found = groups[(step, pattern)] = Group(step, pattern, message)
            found.last_seen = str(row["created_at"])
        found.count += 1
        found.first_seen = str(row["created_at"])
        found.runs[int(row["run_id"])] = None
        if row.get("member_identifier"):
            found.members[str(row["member_identifier"])] = None
        if row.get("pipeline"):
            found.pipelines[str(row["pipeline"])] = None
    return sorted(groups.values(), key=lambda g: (-g.count, g.step_name, g.pattern))
