"""Waiting on the owners of `running` runs: the monitor learns of a same-host death the moment it happens.

Linux gives a file descriptor for a process (`os.pidfd_open`, also for a process that is not our child) that
becomes readable when the process dies: `poll()` on all of them wakes the monitor at once, and the reaper
judges and ends the runs of the one that died. Only owners on this host (same hostname, boot and pid namespace:
`liveness.same_host`) can be waited on; the others — another host, another pid namespace, a process we may not
open — are judged at the monitor's next pass, as before.

Between reading a run's row and opening the pidfd, the owner may have died and its pid gone to another process.
So the identity is confirmed *after* opening (`liveness.judge`, which compares the start time in clock ticks):
a pidfd refers to one process for good, so if the process it was opened on is the owner, its readiness is the
owner's death.

The moment of that death is known too (`liveness.Death`): each owner was alive when it was last found not ready
(at the latest poll, or when its pidfd was opened and its identity confirmed), and dead when the poll returned
it. The monitor spends its time in that poll, so a death wakes it within milliseconds: the reaper ends the run
then, not at its last heartbeat (docs/reaper.md#when-a-lost-run-ended).
"""

from __future__ import annotations

import os
import select
from collections.abc import Sequence

from ..base.clock import now_ms
from ..core import liveness

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

AVAILABLE = hasattr(os, "pidfd_open") and hasattr(select, "poll")


class Deaths:
    """The pidfds of the owners of this host's `running` runs."""

    def __init__(self) -> None:
        self._poll = select.poll() if AVAILABLE else None
        self._owners: dict[tuple[Any, Any], int] = {}  # (pid, process_key) -> pidfd
        self._runs: dict[int, list[dict[str, Any]]] = {}  # pidfd -> the owner's running runs
        self._cannot: set[tuple[Any, Any]] = set()  # owners we may not wait on (judged at each pass)
        self._alive: dict[int, int] = {}  # pidfd -> the last moment its process was known alive (ms)

    def follow(self, running: Sequence[dict[str, Any]], observer: liveness.Observer) -> list[dict[str, Any]]:
        """Wait on the owners of these `running` runs from now on, and no longer on others. Returns the runs whose
        owner turned out to be gone already (to be reaped now)."""
        if self._poll is None:
            return []
        owners: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
        for row in running:
            if row.get("pid") is not None and liveness.same_host(row, observer):
                owners.setdefault((row["pid"], row.get("process_key")), []).append(row)
        for owner in [o for o in self._owners if o not in owners]:
            self._forget(self._owners[owner])
        self._cannot &= set(owners)
        dead: list[dict[str, Any]] = []
        for owner, rows in owners.items():
            fd = self._owners.get(owner)
            if fd is not None:
                self._runs[fd] = rows
            elif owner not in self._cannot:
                dead += self._open(owner, rows, observer)
        return dead

    def _open(self, owner: tuple[Any, Any], rows: list[dict[str, Any]],
              observer: liveness.Observer) -> list[dict[str, Any]]:
        try:
            fd = os.pidfd_open(int(owner[0]))
        except ProcessLookupError:
            return rows  # gone already
        except OSError:
            self._cannot.add(owner)  # not permitted, or pidfds unsupported by this kernel: the pass judges it
            return []
        # The pid may belong to another process by now: only the owner's pidfd may be kept.
        checked = now_ms()
        if liveness.judge(rows[0], observer) is not None:
            os.close(fd)
            return rows
        assert self._poll is not None
        self._owners[owner] = fd
        self._runs[fd] = rows
        self._alive[fd] = checked
        self._poll.register(fd, select.POLLIN)
        return []

    def _forget(self, fd: int) -> None:
        assert self._poll is not None
        rows = self._runs.pop(fd, [])
        if rows:
            self._owners.pop((rows[0]["pid"], rows[0].get("process_key")), None)
        else:
            self._owners = {k: v for k, v in self._owners.items() if v != fd}
        self._alive.pop(fd, None)
        self._poll.unregister(fd)
        os.close(fd)

    def wait(self, timeout_s: float) -> list[tuple[dict[str, Any], liveness.Death]]:
        """Wait up to `timeout_s` for an owner to die; the runs of those that died (each owner once), each with
        when its owner was last known alive and when it was seen dead."""
        if self._poll is None or not self._runs:
            return []
        before = now_ms()
        ready = self._poll.poll(max(timeout_s, 0) * 1000)
        seen = now_ms()
        dead: list[tuple[dict[str, Any], liveness.Death]] = []
        for fd, _ in ready:
            death = liveness.Death(self._alive.get(fd, seen), seen)
            dead += [(row, death) for row in self._runs.get(fd, [])]
            self._forget(fd)
        # The others were not ready when the poll was called: alive then.
        for fd in self._alive:
            self._alive[fd] = before
        return dead

    def watching(self, row: dict[str, Any]) -> bool:
        """Whether this run's owner is waited on: its death will be seen (by `wait`) the moment it happens."""
        return (row.get("pid"), row.get("process_key")) in self._owners

    @property
    def watched(self) -> int:
        """How many owners are waited on."""
        return len(self._runs)

    def close(self) -> None:
        for fd in list(self._runs):
            self._forget(fd)
