"""The monitor's loop: what `runtracker monitor` (`run`, in the foreground) and `runtracker serve`
(`in_background`, a thread of the dashboard's process: reaping only, or with `--monitor` the alerts too) both
run, on a store of its own.

- every `TICK_S` it reads the `running` runs (one probe of idx_runs_running), waits on the processes of this
  host's owners (`pidwatch`) and, with alerts, has the watcher look for runs that ended (`Watcher.tick`);
- every `interval` it reaps (`reaper.reap`: also the other hosts' runs, by heartbeat age), has the watcher
  evaluate schedules and runtimes (`Watcher.evaluate`) and checkpoints a SQLite WAL (`Store.checkpoint`);
- the moment an owner on this host dies, it reaps that owner's runs and ticks the watcher. The run ends at that
  moment, the death it saw (`liveness.Death`); the passes leave the runs of owners it waits on to the wait, so
  that no pass ends such a run at its last heartbeat a moment before the wait would have seen the death.

What is reaped is decided by the reaper (`runtracker.core.reaper`), what is alerted by the alerts' watcher
(`runtracker.alerts.watcher`), whose delivery threads send; this module only says when. The alerts extra is
optional: without it (or with --no-alerts) the loop only reaps.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

from ..base.clock import now_ms
from ..core import liveness, reaper
from ..settings.values import heartbeat_timeout_s
from ..storage import Runs, Store
from . import pidwatch

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from typing import Any

    from ..alerts.watcher import Watcher

log = logging.getLogger("runtracker")

DEFAULT_MONITOR_INTERVAL_S = 5.0
# How often the monitor looks at the `running` runs between passes (one read of idx_runs_running): a new run's
# owner is waited on (pidwatch) within this of its start, and with alerts, a run's end is seen within this.
TICK_S = 0.25
# After a failing pass (the database away), the next try comes this much later at most.
ERROR_WAIT_S = 5.0
DETECTED_BY = "runtracker monitor"
THREAD_NAME = "runtracker-monitor"
# How long `serve` waits at exit for the pass in progress.
JOIN_S = 30.0


def alerts_watcher(store: Store, config_path: str | None) -> tuple[Watcher | None, str]:
    """The alerts' watcher of `store` and a line saying what it watches; (None, what to install) when the alerts
    extra is missing. Raises `configfile.ConfigError` for a config file that cannot be used: the monitor stops
    before it starts, nothing of the file half applied."""
    from .. import alerts

    missing = alerts.missing()
    if missing:
        return None, f"runtracker monitor: {missing}"
    from ..alerts.watcher import Watcher

    watcher = Watcher(store, config_path)
    scheduled = sum(1 for p in watcher.config.pipelines.values() if p.watch.schedule is not None)
    return watcher, (f"alerts: {len(watcher.channels.names)} channel(s), {scheduled} scheduled pipeline(s)"
                     f" ({watcher.config.path or 'no config file'})")


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT (Ctrl-C) set `stop`. The handler only sets a flag: the pass in progress finishes its
    transaction and the loop ends at its next wait, so the database never sees half a reap."""

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)


def run(store: Store, stop: threading.Event, *, watcher: Watcher | None = None,
        interval: float = DEFAULT_MONITOR_INTERVAL_S, heartbeat_timeout: float | None = None,
        on_reaped: reaper.OnReaped | None = None, on_error: Callable[[Exception], None] | None = None) -> bool:
    """`runtracker monitor`: the loop in this thread until `stop` is set, with the watcher's sending threads.
    Returns whether they stopped; False when a channel's send still hangs (see `Watcher.stop`)."""
    if watcher is not None:
        watcher.start()
    try:
        monitor(store, interval=interval, heartbeat_timeout=heartbeat_timeout, on_reaped=on_reaped, stop=stop,
                on_error=on_error, watcher=watcher)
    finally:
        stopped = watcher is None or watcher.stop()
    return stopped


def in_background(store: Store, watcher: Watcher | None, *, interval: float = DEFAULT_MONITOR_INTERVAL_S,
                  heartbeat_timeout: float | None = None,
                  detected_by: str = DETECTED_BY) -> Callable[[], None]:
    """`runtracker serve`: the loop in a daemon thread of this process (without a watcher it only reaps), each
    reaped run logged. Returns what stops it (waiting up to `JOIN_S` for the pass in progress)."""
    stop = threading.Event()
    if watcher is not None:
        watcher.start()
    thread = threading.Thread(target=monitor, args=(store,), name=THREAD_NAME, daemon=True,
                              kwargs={"interval": interval, "stop": stop, "watcher": watcher,
                                      "heartbeat_timeout": heartbeat_timeout, "on_reaped": _log_reaped,
                                      "detected_by": detected_by})
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join(JOIN_S)
        if watcher is not None:
            watcher.stop()

    return finish


def _log_reaped(lost: reaper.Reaped) -> None:
    log.warning("runtracker: %s", reaper.describe(lost))


def monitor(store: Store, *, interval: float = DEFAULT_MONITOR_INTERVAL_S, heartbeat_timeout: float | None = None,
            on_reaped: reaper.OnReaped | None = None, stop: threading.Event | None = None,
            on_error: Callable[[Exception], None] | None = None, watcher: Watcher | None = None,
            detected_by: str = DETECTED_BY) -> None:
    """The loop itself: reap every `interval` seconds until `stop` is set, and at once when the owner of a run on
    this host dies: it waits on their processes (`pidwatch`), and looks for new runs to wait on every `TICK_S`.
    With a `watcher` (the alerts) it also looks for ended runs every tick and evaluates schedules every pass. A
    failing pass (database down) is reported through `on_error` (default: logged) and the loop goes on. The
    watcher's sending threads are the caller's to start and stop (`run`, `in_background`). `detected_by`: who
    the crash rows name (`runtracker monitor`, `runtracker serve`)."""
    stop = stop or threading.Event()
    deaths = pidwatch.Deaths()
    timeout = heartbeat_timeout_s(heartbeat_timeout)
    next_pass = 0.0
    try:
        while not stop.is_set():
            try:
                running = Runs(store).running_runs()
                if time.monotonic() >= next_pass:
                    next_pass = time.monotonic() + interval
                    # An owner waited on is left to the wait, which sees the moment it dies: judged here by its
                    # pid, a death since the last wait would end its run at its last heartbeat instead.
                    judged = [row for row in running if not deaths.watching(row)]
                    if reaper.reap(store, heartbeat_timeout=timeout, detected_by=detected_by, on_reaped=on_reaped,
                                   rows=judged):
                        running = Runs(store).running_runs()
                    if watcher is not None:
                        watcher.evaluate(running)
                    # The monitor reads all day, like the dashboard: SQLite's own checkpoints starve (see
                    # SQLiteStore.checkpoint), so it bounds the WAL itself, once a pass, without waiting long.
                    store.checkpoint()
                elif watcher is not None:
                    watcher.tick(running)
                # Owners found dead as they are first waited on died unseen: their runs end at their last sign
                # of life. Those the wait sees die end at that moment.
                dead = deaths.follow(running, liveness.Observer.here(timeout, now_ms()))
                seen: dict[int, liveness.Death] = {}
                if not dead:
                    wait = min(max(next_pass - time.monotonic(), 0.0), TICK_S)
                    if deaths.watched:
                        for row, death in deaths.wait(wait):
                            dead.append(row)
                            seen[int(row["id"])] = death
                    else:
                        stop.wait(wait)
                if dead:
                    # One write per run: reap judges it again (its pid is gone now) and ends it.
                    reaper.reap(store, heartbeat_timeout=timeout, detected_by=detected_by, on_reaped=on_reaped,
                                sweep=False, rows=dead, seen=seen)
                    if watcher is not None:
                        watcher.tick()
            except Exception as exc:
                if on_error is not None:
                    on_error(exc)
                else:
                    log.error("runtracker: the monitor's pass failed, trying again in %g s (%s: %s)", interval,
                              type(exc).__name__, exc)
                stop.wait(min(interval, ERROR_WAIT_S))
    finally:
        deaths.close()
