"""Who may use the dashboard and its APIs, and what they may do: users (a name and a password hash), their
sessions (revocable: docs/dashboard.md), and API keys (a name, a key hash, and a permission set: the pipelines
the key may write through the ingest API, docs/ingest.md, and those it may start). Secrets are hashed by the
caller (`runtracker.web.passwords`): nothing here sees a password, a key or a session id."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from ..base.clock import now_iso
from ..base.records import Record
from .base import Store

# The actions a permission set grants per pipeline. Roles for dashboard users (viewer, operator, admin) are
# permission sets too: a new action is a name here and, for keys, a column in SCOPE_COLUMNS.
WRITE = "write"  # record runs of the pipeline through the ingest API
START = "start"  # start the pipeline's configured command (POST /api/pipeline/<name>/start)
SCOPE_COLUMNS = {WRITE: "write_pipelines", START: "start_pipelines"}  # the api_keys column of each action


class Permissions(Record):
    """What a key (later: a user's role) may do: per action, the pipelines (names or glob patterns, `*` every
    one) it may do it to. An action not granted is refused for every pipeline."""

    __slots__ = ("grants",)

    def __init__(self, grants: Mapping[str, Sequence[str]] | None = None) -> None:
        self.grants = {action: tuple(patterns) for action, patterns in (grants or {}).items() if patterns}

    def patterns(self, action: str) -> tuple[str, ...]:
        return self.grants.get(action, ())

    def allows(self, action: str, pipeline: str) -> bool:
        return any(fnmatchcase(pipeline, pattern) for pattern in self.patterns(action))


class ApiKey(Record):
    """An API key as a request authenticated by it sees it: its id and name, and its permission set."""

    __slots__ = ("key_id", "name", "permissions")

    def __init__(self, key_id: int, name: str, permissions: Permissions) -> None:
        self.key_id = key_id
        self.name = name
        self.permissions = permissions

    @property
    def write(self) -> tuple[str, ...]:
        """The pipelines (names or patterns) the key may write; empty: it writes none."""
        return self.permissions.patterns(WRITE)

    def may_write(self, pipeline: str) -> bool:
        return self.permissions.allows(WRITE, pipeline)


def parse_scope(text: object) -> tuple[str, ...]:
    """A stored scope (`write_pipelines`, `start_pipelines`) as patterns; NULL or anything unreadable grants
    nothing."""
    if not isinstance(text, str):
        return ()
    try:
        value = json.loads(text)
    except ValueError:
        return ()
    return tuple(p for p in value if isinstance(p, str) and p) if isinstance(value, list) else ()


def permissions_of(row: Mapping[str, Any]) -> Permissions:
    """A key's permission set from its row's scope columns."""
    return Permissions({action: parse_scope(row[column]) for action, column in SCOPE_COLUMNS.items()})


_KEY_COLUMNS = ", ".join(SCOPE_COLUMNS.values())


class Auth:
    """Users and API keys on one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- users ---------------------------------------------------------------------------------------------
    def add_user(self, name: str, password_hash: str, timezone: str | None = None) -> bool:
        """False if a user of that name exists. `timezone`: the zone their pages show times in (None: theirs is
        the browser's, else the configured one)."""
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("INSERT INTO users (name, password_hash, created_at, timezone)"
                                       " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING id"),
                        (name, password_hash, now_iso(), timezone))
            return cur.fetchone() is not None

    def set_timezone(self, name: str, timezone: str | None) -> bool:
        """The user's own time zone (None: none, the browser's or the configured one); False: no such user."""
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("UPDATE users SET timezone = ? WHERE name = ?"), (timezone, name))
            return bool(cur.rowcount)

    def add_demo_user(self, name: str, password_hash: str) -> bool:
        """The demo mode's user, marked demo-only: a server not in demo mode refuses it."""
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("INSERT INTO users (name, password_hash, created_at, demo_only)"
                                       " VALUES (?, ?, ?, 1) ON CONFLICT (name) DO NOTHING RETURNING id"),
                        (name, password_hash, now_iso()))
            return cur.fetchone() is not None

    def set_password(self, name: str, password_hash: str) -> bool:
        """A new password ends every session of the user, in the same transaction; a password the operator set
        is a real one: the user is no longer demo-only."""
        with self.store.transaction() as cur:
            cur.execute(self.store.sql(
                "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = ?)"), (name,))
            cur.execute(self.store.sql("UPDATE users SET password_hash = ?, demo_only = 0 WHERE name = ?"),
                        (password_hash, name))
            return bool(cur.rowcount)

    def remove_user(self, name: str) -> bool:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql(
                "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = ?)"), (name,))
            cur.execute(self.store.sql("DELETE FROM users WHERE name = ?"), (name,))
            return bool(cur.rowcount)

    def user(self, name: str) -> dict[str, Any] | None:
        rows = self.store.read("SELECT id, name, password_hash, created_at, demo_only, timezone FROM users"
                               " WHERE name = ?", (name,))
        return rows[0] if rows else None

    def users(self) -> list[dict[str, Any]]:
        return self.store.read("SELECT id, name, created_at, demo_only, timezone FROM users ORDER BY name")

    def user_count(self) -> int:
        """How many real users there are: demo-only ones are not counted."""
        return int(self.store.read("SELECT COUNT(*) AS n FROM users WHERE demo_only = 0")[0]["n"])

    # -- sessions ------------------------------------------------------------------------------------------
    def open_session(self, user_id: int, id_hash: str, expires_at: str, keep: int) -> None:
        """A new session of the user, who keeps at most `keep` (the oldest end first: logins in a loop cannot
        grow the table); sessions expired by then are pruned, all in the same transaction."""
        now = now_iso()
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("DELETE FROM sessions WHERE expires_at < ?"), (now,))
            cur.execute(self.store.sql(
                "DELETE FROM sessions WHERE user_id = ? AND id_hash NOT IN (SELECT id_hash FROM sessions"
                " WHERE user_id = ? ORDER BY created_at DESC, id_hash LIMIT ?)"), (user_id, user_id, keep - 1))
            cur.execute(self.store.sql("INSERT INTO sessions (id_hash, user_id, created_at, expires_at)"
                                       " VALUES (?, ?, ?, ?)"), (id_hash, user_id, now, expires_at))

    def session_user(self, id_hash: str) -> dict[str, Any] | None:
        """The user of a session that was opened and not ended (a row as `user` gives, with the session's
        `expires_at`), or None."""
        rows = self.store.read(
            "SELECT u.id, u.name, u.password_hash, u.created_at, u.demo_only, u.timezone, s.expires_at"
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?", (id_hash,))
        return rows[0] if rows else None

    def end_session(self, id_hash: str) -> bool:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("DELETE FROM sessions WHERE id_hash = ?"), (id_hash,))
            return bool(cur.rowcount)

    def end_sessions(self, name: str) -> int | None:
        """End every session of the user; how many there were, or None if there is no such user."""
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("SELECT id FROM users WHERE name = ?"), (name,))
            found = cur.fetchone()
            if found is None:
                return None
            cur.execute(self.store.sql("DELETE FROM sessions WHERE user_id = ?"), (found[0],))
            return int(cur.rowcount or 0)

    def session_counts(self) -> dict[int, int]:
        """How many sessions each user has (expired ones not yet pruned included), by user id."""
        rows = self.store.read("SELECT user_id, COUNT(*) AS n FROM sessions GROUP BY user_id")
        return {int(row["user_id"]): int(row["n"]) for row in rows}

    # -- API keys ------------------------------------------------------------------------------------------
    def add_api_key(self, name: str, key_hash: str) -> int:
        """A new key of that name (several keys may share one), permitted nothing until `set_scope`."""
        with self.store.transaction() as cur:
            return self.store.insert_returning_id(
                cur, "INSERT INTO api_keys (name, key_hash, created_at) VALUES (?, ?, ?)", (name, key_hash, now_iso()))

    def api_key(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, as a request authenticated by it is checked against; None: no such key."""
        rows = self.store.read(f"SELECT id, name, {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,))
        if not rows:
            return None
        return ApiKey(int(rows[0]["id"]), str(rows[0]["name"]), permissions_of(rows[0]))

    def set_scope(self, key_id: int, action: str, patterns: Sequence[str]) -> None:
        """The pipelines (names or glob patterns) a key may do `action` (WRITE, START) to; none: no pipeline."""
        column = SCOPE_COLUMNS[action]  # a KeyError for an unknown action: never SQL built from the caller's text
        with self.store.transaction() as cur:
            cur.execute(self.store.sql(f"UPDATE api_keys SET {column} = ? WHERE id = ?"),
                        (json.dumps(list(patterns)) if patterns else None, key_id))

    def set_write_scope(self, key_id: int, patterns: Sequence[str]) -> None:
        """The pipelines a key may write; none: read-only."""
        self.set_scope(key_id, WRITE, patterns)

    def touch_api_key(self, key_id: int, at: str) -> None:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("UPDATE api_keys SET last_used_at = ? WHERE id = ?"), (at, key_id))

    def remove_api_keys(self, name: str) -> int:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("DELETE FROM api_keys WHERE name = ?"), (name,))
            return int(cur.rowcount or 0)

    def api_keys(self) -> list[dict[str, Any]]:
        return self.store.read("SELECT id, name, created_at, last_used_at FROM api_keys ORDER BY name, id")

    def permissions(self) -> dict[int, Permissions]:
        """Every key's permission set, by key id (for `runtracker user list`)."""
        rows = self.store.read(f"SELECT id, {_KEY_COLUMNS} FROM api_keys")
        return {int(row["id"]): permissions_of(row) for row in rows}
