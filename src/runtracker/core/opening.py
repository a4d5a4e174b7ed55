"""Opening a run, for every front door: the Python API (`RunTracker.start_run`), `runtracker exec` and the ingest
API (HTTP) all call `open_run`, which does what comes before the row and then opens it through `lifecycle`.

The preamble, in this order, and why:
1. The store: the process's one store of the database (`STATE.stores`), or the dashboard's own.
2. The crash hooks (in-process doors): from here on, any death of this process ends its runs. The log ring
   only for a tracker that keeps log lines or records ERROR log records (logring.py).
3. Reaping the lost runs of other processes, as a service to them: it never costs this run (a failure is
   logged). The ingest API reaps once its request has committed instead (`reap_first=False`, then
   `reap_lost`): the reaping deletes crash files, which a rollback of the request must not undo.
4. The row, through `lifecycle.open_run` (in-process: registered for the hooks, beaten for by the heartbeat) or
   `lifecycle.open_remote_run` (an API key's run: nothing of this process goes into it), after deleting the
   runs past retention. With a `lock_key`, a running run of the same key refuses it: `Locked`.

Settings not given (None) are the process's (`settings.values`: the environment, else the defaults).
"""

from __future__ import annotations

import time

from ..base.guard import report
from ..settings import values
from ..storage import Runs, Store
from . import hooks, lifecycle, reaper
from .state import STATE, OpenRun

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any


LOCK_REAPER = "runtracker exec --lock"


class Locked(Exception):
    """Another `running` run holds the lock (`runtracker exec --lock`): `holder` is its row."""

    def __init__(self, holder: dict[str, Any]) -> None:
        super().__init__(holder.get("id"))
        self.holder = holder


def open_run(*, pipeline: str, club_slug: str | None, started_ms: int, db: object = None,
             store: Store | None = None, install_hooks: bool = True, reap_first: bool = True,
             door: str = "at start_run", heartbeat_s: float | None = None, heartbeat_timeout_s: float | None = None,
             retention_days: int | None = None, lock_key: str | None = None, attach_to: int | None = None,
             keep_unwritten: bool = False, started_by: str | None = None, owner: str | None = None,
             log_lines: int = 0, log_errors: bool = False, log_since: float | None = None) -> OpenRun | int:
    """Open a run of `pipeline`, started at `started_ms` (the moment the caller was asked), preamble included.

    The differences between the doors are the arguments:
    - `store`: the caller's own store (the dashboard's); else this process's store of `db`;
    - `install_hooks`: install the crash hooks (False: the dashboard serves other processes' runs);
    - `reap_first`: reap lost runs before opening (False: the caller reaps later, with `reap_lost`); `door`
      says where, if that fails ("at start_run", "before exec");
    - `owner`: an API key's run (`process_key`, e.g. `api-key:3`): opened for a client, not for this process,
      and its id is returned; else this process's `OpenRun`;
    - `lock_key` (`runtracker exec --lock`): Locked if a running run of the key holds it, after one more
      reaping (its holder may have died after the first);
    - `attach_to`, `keep_unwritten`, `started_by`: as `lifecycle.open_run`;
    - `log_lines`, `log_errors`, `log_since`: the tracker's log settings (logring.py): the log ring is
      installed when either asks for it, and the run gets them before this returns.
    """
    if store is None:
        store = STATE.stores.get(db)
    if install_hooks:
        hooks.install()  # for `runtracker exec`: the wrapper's own crash (a bug of ours) still ends its run
    if log_lines or log_errors:  # the log ring: installed once per process (logring.py)
        STATE.log_ring.install(log_lines, lifecycle.record_log_error if log_errors else None)
    if install_hooks:
        # Ends this process could not write a moment ago (the database was away): before this run, in order.
        lifecycle.write_pending(store)
    if reap_first:
        reap_lost(store, heartbeat_timeout_s, door)
    cutoff = values.retention_cutoff(values.retention_days(retention_days))
    if owner is not None:
        return lifecycle.open_remote_run(store, pipeline=pipeline, club_slug=club_slug, started_ms=started_ms,
                                         owner=owner, started_by=started_by or "", retention_cutoff=cutoff)
    interval = values.heartbeat_interval_s(heartbeat_s)
    for attempt in range(3):
        run = lifecycle.open_run(store, pipeline=pipeline, club_slug=club_slug, started_ms=started_ms,
                                 heartbeat_s=interval, retention_cutoff=cutoff, lock_key=lock_key,
                                 attach_to=attach_to, keep_unwritten=keep_unwritten, started_by=started_by)
        if run is not None:
            run.keeps_logs(log_lines, time.time() if log_since is None else log_since, log_errors)
            return run
        assert lock_key is not None  # without a lock_key a new run always opens
        if attempt == 0:
            # The holder may have died after the reaping above (or between two hosts' reaps): look again. (A lock
            # is `runtracker exec --lock`'s, whose name the runs it reaps record.)
            reaper.reap(store, heartbeat_timeout=values.heartbeat_timeout_s(heartbeat_timeout_s),
                        detected_by=LOCK_REAPER)
        holder = Runs(store).lock_holder(lock_key)
        if holder is not None:
            raise Locked(holder)
        # The holder ended between our insert and our look: try again.
    raise Locked({"id": "?", "pid": "?", "hostname": "?", "started_at": "?"})


def reap_lost(store: Store, heartbeat_timeout_s: float | None = None, door: str = "at start_run") -> None:
    """Reap the lost runs of other processes, as a door does before it opens a run (`reaper.reap_at_start`);
    never raises: reaping is a service to others, it never costs this run."""
    try:
        reaper.reap_at_start(store, values.heartbeat_timeout_s(heartbeat_timeout_s))
    except Exception as exc:
        report(f"reaping lost runs {door}", exc)
