"""SQLite's write-ahead log stays bounded while readers never pause (the dashboard and the monitor read all day,
so SQLite's own passive checkpoints starve and the WAL only grew: 99 MB in the soak)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from helpers import wait_until
from runtracker.monitor import loop
from runtracker.storage.sqlite import WAL_LIMIT_BYTES, SQLiteStore

T0 = "2026-12-07T12:00:00.000Z"


@contextmanager
def readers_that_never_pause(path: str) -> Iterator[None]:
    """Two connections reading in a loop, their read transactions overlapping (a dashboard and a monitor)."""
    stop = threading.Event()
    turns = [threading.Event(), threading.Event()]

    def read(mine: threading.Event, other: threading.Event) -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        while not stop.is_set():
            conn.execute("BEGIN")
            conn.execute("SELECT COUNT(*) FROM runs").fetchone()
            mine.set()  # the other may end its transaction now: this one holds a snapshot meanwhile
            other.wait(0.5)
            other.clear()
            conn.execute("COMMIT")
        conn.close()

    threads = [threading.Thread(target=read, args=(turns[0], turns[1])),
               threading.Thread(target=read, args=(turns[1], turns[0]))]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def write_runs(store: SQLiteStore, n: int) -> None:
    """`n` commits, each while another connection reads a snapshot older than the commit before it (two
    connections take turns), so that SQLite's own checkpoints cannot restart the WAL at any of them."""
    snapshots = [sqlite3.connect(store.path, isolation_level=None) for _ in range(2)]
    for i in range(n):
        taking, leaving = snapshots[i % 2], snapshots[(i + 1) % 2]
        taking.execute("BEGIN")
        taking.execute("SELECT COUNT(*) FROM runs").fetchone()
        if leaving.in_transaction:
            leaving.execute("COMMIT")
        with store.transaction() as cur:
            cur.execute("INSERT INTO runs (pipeline, started_at, outcome) VALUES (?, ?, 'success')", ("x" * 2000, T0))
    for conn in snapshots:
        conn.close()


def wal_bytes(store: SQLiteStore) -> int:
    return os.path.getsize(store.path + "-wal")


def test_a_checkpoint_truncates_the_wal_that_readers_kept_growing(tmp_path):
    """Under readers that never pause the WAL outgrows its limit; the store's checkpoint brings it back under."""
    store = SQLiteStore(str(tmp_path / "dashboard.sqlite")).open()
    with readers_that_never_pause(store.path):
        write_runs(store, 800)
        assert wal_bytes(store) > WAL_LIMIT_BYTES  # what the passive checkpoints left
        assert any(store.checkpoint() for _ in range(50))  # a reader may be mid-snapshot: a later try gets in
        assert wal_bytes(store) <= WAL_LIMIT_BYTES
        write_runs(store, 10)  # and the database goes on
    assert store.read("SELECT COUNT(*) AS n FROM runs")[0]["n"] == 810
    assert store.read("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
    store.close()


def test_the_monitor_keeps_the_wal_bounded_under_readers(tmp_path):
    """`runtracker monitor`'s loop checkpoints every pass: the WAL comes back under its limit while readers go on."""
    store = SQLiteStore(str(tmp_path / "dashboard.sqlite")).open()
    monitor_store = SQLiteStore(store.path).open()
    stop = threading.Event()
    with readers_that_never_pause(store.path):
        write_runs(store, 800)
        assert wal_bytes(store) > WAL_LIMIT_BYTES
        thread = threading.Thread(target=loop.monitor, args=(monitor_store,), kwargs={"interval": 0.05, "stop": stop})
        thread.start()
        try:
            wait_until(lambda: wal_bytes(store) <= WAL_LIMIT_BYTES, "the monitor to bound the WAL")
        finally:
            stop.set()
            thread.join()
    monitor_store.close()
    store.close()
