"""`runtracker reap` (once) and `runtracker monitor` (a loop, for a long-running service)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import click

from ..base.terminal import safe
from ..core import reaper
from ..settings import values as config
from .common import Seconds, db_option, for_terminal, store_for

log = logging.getLogger("runtracker")


def timeout_option(fn: Any) -> Any:
    return click.option(
        "--heartbeat-timeout", "heartbeat_timeout", default=None, metavar="SECONDS",
        type=Seconds(0, config.MAX_HEARTBEAT_TIMEOUT_S, low_open=True),
        help="Another host's run is lost when its heartbeat is older than this (more than 0, at most "
             f"{config.MAX_HEARTBEAT_TIMEOUT_S:g}) [env {config.HEARTBEAT_TIMEOUT_ENV}; "
             f"default {config.DEFAULT_HEARTBEAT_TIMEOUT_S:g}].",
    )(fn)


def json_option(fn: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object per reaped run.")(fn)


def _printer(as_json: bool) -> reaper.OnReaped:
    def show(lost: reaper.Reaped) -> None:
        click.echo(json.dumps(lost.fields()) if as_json else safe(reaper.describe(lost)))

    return show


@click.command("reap")
@db_option
@timeout_option
@json_option
def reap_command(db: str | None, heartbeat_timeout: float | None, as_json: bool) -> None:
    """End `running` runs whose process is gone (SIGKILL, OOM, segfault, lost host) as `failure`, once."""
    store = store_for(db)
    try:
        found = reaper.reap(store, heartbeat_timeout=heartbeat_timeout, detected_by="runtracker reap",
                            on_reaped=_printer(as_json))
    except Exception as exc:
        raise click.ClickException(f"reaping failed: {_failure(exc, db)}") from None
    if not found and not as_json:
        click.echo("nothing to reap")


@click.command("monitor")
@db_option
@click.option("--interval", default=reaper.DEFAULT_MONITOR_INTERVAL_S, show_default=True, metavar="SECONDS",
              type=Seconds(config.MIN_MONITOR_INTERVAL_S, config.MAX_MONITOR_INTERVAL_S),
              help=f"Seconds between two passes: reaping, schedules, runs too long ({config.MIN_MONITOR_INTERVAL_S:g} "
                   f"to {config.MAX_MONITOR_INTERVAL_S:g}). A death on this host is seen at once.")
@timeout_option
@click.option("--config", "config_path", default=None, metavar="PATH",
              help="Pipeline config file: schedules and alert channels [env RUNTRACKER_CONFIG; default "
                   "./runtracker.toml if it exists].")
@click.option("--alerts/--no-alerts", "with_alerts", default=True, show_default=True,
              help="Evaluate schedules and send alerts (needs the alerts extra); --no-alerts only reaps.")
@json_option
def monitor_command(db: str | None, interval: float, heartbeat_timeout: float | None, config_path: str | None,
                    with_alerts: bool, as_json: bool) -> None:
    """Reap lost runs, evaluate schedules and send alerts until SIGTERM or Ctrl-C (run it as a service).

    A run whose process dies on this host is reaped the moment it dies (the monitor waits on its process);
    others at the next pass. Alerts go through the channels of the config file: see docs/alerts.md.
    """
    store = store_for(db)
    stop = threading.Event()

    # The handler only sets a flag: the pass in progress finishes its transaction and the loop ends at its
    # next wait, so the database never sees half a reap.
    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    watcher, said = _watcher(store, config_path) if with_alerts else (None, "alerts: off (--no-alerts)")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)
    click.echo(f"monitoring {safe(store.url)} every {interval:g} s", err=True)
    click.echo(said, err=True)

    def on_error(exc: Exception) -> None:
        click.echo(f"the monitor's pass failed, trying again: {_failure(exc, db)}", err=True)

    if watcher is not None:
        watcher.start()
    try:
        reaper.monitor(store, interval=interval, heartbeat_timeout=heartbeat_timeout, on_reaped=_printer(as_json),
                       stop=stop, on_error=on_error, watcher=watcher)
    finally:
        stopped = watcher is None or watcher.stop()
    click.echo("monitor stopped", err=True)
    if not stopped:
        # A send hangs in a channel (an SMTP server that never answers): Apprise's threads would hold the exit
        # until its timeout. Its delivery stays claimed and is retried when the claim runs out.
        click.echo("a channel's send was still hanging; not waiting for it", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _watcher(store: Any, config_path: str | None) -> tuple[Any, str]:
    """The alerts' watcher and a line saying what it watches; (None, what to install) when the alerts extra is
    missing. A config file that cannot be used stops the monitor before it starts: nothing of it is half
    applied."""
    from .. import alerts

    missing = alerts.missing()
    if missing:
        return None, f"runtracker monitor: {missing}"
    from ..alerts.watcher import Watcher
    from ..settings.configfile import ConfigError

    try:
        watcher = Watcher(store, config_path)
    except ConfigError as exc:
        raise click.ClickException(for_terminal(str(exc))) from None
    scheduled = sum(1 for p in watcher.config.pipelines.values() if p.watch.schedule is not None)
    return watcher, (f"alerts: {len(watcher.channels.names)} channel(s), {scheduled} scheduled pipeline(s)"
                     f" ({watcher.config.path or 'no config file'})")


def background_monitor(db: str | None, config_path: str | None,
                       interval: float = reaper.DEFAULT_MONITOR_INTERVAL_S) -> Callable[[], None]:
    """`runtracker serve --monitor`: the monitor's loop (reaping, schedules, alerts) in a thread of this process,
    on a connection of its own. Returns what stops it."""
    store = store_for(db)
    watcher, said = _watcher(store, config_path)
    stop = threading.Event()
    if watcher is not None:
        watcher.start()

    def on_reaped(lost: reaper.Reaped) -> None:
        log.warning("runtracker: %s", reaper.describe(lost))

    thread = threading.Thread(target=reaper.monitor, args=(store,), name="runtracker-monitor", daemon=True,
                              kwargs={"interval": interval, "stop": stop, "watcher": watcher, "on_reaped": on_reaped})
    thread.start()
    click.echo(f"monitoring {safe(store.url)} in this process every {interval:g} s; {said}", err=True)

    def finish() -> None:
        stop.set()
        thread.join(30)
        if watcher is not None:
            watcher.stop()

    return finish


def _failure(exc: Exception, db: str | None) -> str:
    return for_terminal(f"{type(exc).__name__}: {exc}", db)


COMMANDS = [reap_command, monitor_command]
