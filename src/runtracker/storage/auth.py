"""Who may use the dashboard and its APIs: users (a name and a password hash) and API keys (a name, a key hash,
and the pipelines the key may write through the ingest API, docs/ingest.md). Secrets are hashed by the caller
(`runtracker.web.passwords`): nothing here sees a password or a key."""

from __future__ import annotations

import json
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

from ..base.clock import now_iso
from ..base.records import Record
from .base import Store


class ApiKey(Record):
    """An API key as the ingest API sees it: its id and name, and the pipelines it may write."""

    __slots__ = ("key_id", "name", "write")

    def __init__(self, key_id: int, name: str, write: tuple[str, ...]) -> None:
        self.key_id = key_id
        self.name = name
        self.write = write  # pipeline names or glob patterns; empty: read-only

    def may_write(self, pipeline: str) -> bool:
        return any(fnmatchcase(pipeline, pattern) for pattern in self.write)


def parse_scope(text: object) -> tuple[str, ...]:
    """The stored `write_pipelines` as patterns; NULL or anything unreadable is read-only."""
    if not isinstance(text, str):
        return ()
    try:
        value = json.loads(text)
    except ValueError:
        return ()
    return tuple(p for p in value if isinstance(p, str) and p) if isinstance(value, list) else ()


class Auth:
    """Users and API keys on one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- users ---------------------------------------------------------------------------------------------
    def add_user(self, name: str, password_hash: str) -> bool:
        """False if a user of that name exists."""
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?)"
                                       " ON CONFLICT (name) DO NOTHING RETURNING id"),
                        (name, password_hash, now_iso()))
            return cur.fetchone() is not None

    def set_password(self, name: str, password_hash: str) -> bool:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("UPDATE users SET password_hash = ? WHERE name = ?"), (password_hash, name))
            return bool(cur.rowcount)

    def remove_user(self, name: str) -> bool:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("DELETE FROM users WHERE name = ?"), (name,))
            return bool(cur.rowcount)

    def user(self, name: str) -> dict[str, Any] | None:
        rows = self.store.read("SELECT id, name, password_hash, created_at FROM users WHERE name = ?", (name,))
        return rows[0] if rows else None

    def users(self) -> list[dict[str, Any]]:
        return self.store.read("SELECT id, name, created_at FROM users ORDER BY name")

    def user_count(self) -> int:
        return int(self.store.read("SELECT COUNT(*) AS n FROM users")[0]["n"])

    # -- API keys ------------------------------------------------------------------------------------------
    def add_api_key(self, name: str, key_hash: str) -> int:
        """A new key of that name (several keys may share one), read-only until `set_write_scope`."""
        with self.store.transaction() as cur:
            return self.store.insert_returning_id(
                cur, "INSERT INTO api_keys (name, key_hash, created_at) VALUES (?, ?, ?)", (name, key_hash, now_iso()))

    def api_key(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, as a request authenticated by it is checked against; None: no such key."""
        rows = self.store.read("SELECT id, name, write_pipelines FROM api_keys WHERE key_hash = ?", (key_hash,))
        if not rows:
            return None
        return ApiKey(int(rows[0]["id"]), str(rows[0]["name"]), parse_scope(rows[0]["write_pipelines"]))

    def set_write_scope(self, key_id: int, patterns: Sequence[str]) -> None:
        """The pipelines (names or glob patterns) a key may write; none: read-only."""
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("UPDATE api_keys SET write_pipelines = ? WHERE id = ?"),
                        (json.dumps(list(patterns)) if patterns else None, key_id))

    def touch_api_key(self, key_id: int, at: str) -> None:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("UPDATE api_keys SET last_used_at = ? WHERE id = ?"), (at, key_id))

    def remove_api_keys(self, name: str) -> int:
        with self.store.transaction() as cur:
            cur.execute(self.store.sql("DELETE FROM api_keys WHERE name = ?"), (name,))
            return int(cur.rowcount or 0)

    def api_keys(self) -> list[dict[str, Any]]:
        return self.store.read("SELECT id, name, created_at, last_used_at FROM api_keys ORDER BY name, id")

    def scopes(self) -> dict[int, tuple[str, ...]]:
        """Every key's write scope, by key id (for `runtracker user list`)."""
        rows = self.store.read("SELECT id, write_pipelines FROM api_keys")
        return {int(row["id"]): parse_scope(row["write_pipelines"]) for row in rows}
