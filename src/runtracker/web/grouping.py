"""Grouping similar errors: "these 14 members fail every night" as one line.

Two errors are alike when their step is the same and their messages are the same once the parts that differ
from one occurrence to the next are replaced by placeholders: quoted strings, UUIDs, hexadecimal ids, and
numbers (member numbers like KNVB1004 included). Grouping happens here, over a bounded window of the latest
errors that match the filters (read by key from an index): the pipelines' write path (`record_errors`) does
no extra work for it, and the page says which window it grouped.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape

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
                 "pipelines", "drawn")

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
        self.drawn: dict[tuple[str, int], Markup] = {}  # run_links & co., once drawn

    # The links a group's row shows, drawn once per group (a kept window's groups are shown again and again):
    # the latest `n` runs and members, the first `n` pipelines (newest first), as the template would write them.
    def run_links(self, n: int) -> Markup:
        return self._drawn(("runs", n), lambda: "".join(
            f'<a href="/run/{int(r)}">#{int(r)}</a> ' for r in itertools.islice(self.runs, n)))

    def member_links(self, n: int) -> Markup:
        return self._drawn(("members", n), lambda: "".join(
            f'<a href="/member/{quote(m, safe="")}">{escape(m)}</a> ' for m in itertools.islice(self.members, n)))

    def pipeline_links(self, n: int) -> Markup:
        return self._drawn(("pipelines", n), lambda: ", ".join(
            f'<a href="/pipeline/{quote(p, safe="")}">{escape(p)}</a>' for p in itertools.islice(self.pipelines, n)))

    def _drawn(self, key: tuple[str, int], draw: Callable[[], str]) -> Markup:
        found = self.drawn.get(key)
        if found is None:
            found = self.drawn[key] = Markup(draw())
        return found

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


class WindowGroups:
    """The groups of a window of errors, kept between requests (one per dashboard).

    A window is read anew whenever the database changed (`Dashboard.unchanged` keeps it while nothing did), but
    most commits add no error to it: pipelines commit runs and steps all day. So first only the window's ids are
    read (`ErrorSearch.error_window_ids`, a narrow walk of the same index). An error never changes once
    recorded and its id is never reused, so:

    - the same ids as last time: the same groups, kept;
    - other ids (new errors, cleared ones): the rows not kept yet are read by id, and the window is grouped
      again from kept rows (`normalise` remembers each message's pattern).

    The first request of a window (or one sharing few rows with what is kept) reads the whole window in one
    statement, as without this. Bounded: at most ROWS rows and WINDOWS windows are kept."""

    ROWS = 25_000  # more than the largest window (20,000)
    WINDOWS = 16
    # Reading a window's rows by id costs more per row than the window's own walk: below this share kept, walk.
    MIN_KEPT_SHARE = 0.5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, dict[str, Any]] = {}
        self._windows: dict[Hashable, tuple[tuple[int, ...], list[Group]]] = {}

    def groups(self, search: Any, flt: Any, size: int) -> tuple[int, list[Group]]:
        """How many errors the window of the latest `size` matching `flt` holds, and their groups (`group`).
        `search`: an `ErrorSearch`; `flt`: an `ErrorFilter`."""
        key = (tuple(flt.fields().items()), size)
        ids = tuple(search.error_window_ids(flt, size))
        with self._lock:
            kept = self._windows.get(key)
            if kept is not None and kept[0] == ids:
                return len(ids), kept[1]
            rows = self._rows
            missing = [i for i in ids if i not in rows]
        if len(missing) > len(ids) * (1 - self.MIN_KEPT_SHARE):
            read = search.error_window(flt, size)  # the same rows, unless a commit came in between: then newer
            ids = tuple(int(row["id"]) for row in read)
        else:
            read = search.errors_by_id(missing)
        with self._lock:
            rows = self._rows
            rows.update((int(row["id"]), row) for row in read)
            window = [rows[i] for i in ids if i in rows]  # an error cleared between the two reads is left out
            if len(rows) > self.ROWS:  # keep what this window holds
                self._rows = {i: rows[i] for i in ids if i in rows}
        grouped = group(window)
        with self._lock:
            if key not in self._windows and len(self._windows) >= self.WINDOWS:
                self._windows.pop(next(iter(self._windows)))
            self._windows[key] = (ids, grouped)
        return len(window), grouped
