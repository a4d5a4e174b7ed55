"""`runtracker reap` (once) and `runtracker monitor` (the loop of `runtracker.monitor.loop`, for a long-running
service): options and output."""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import click

from ..base.terminal import safe
from ..core import reaper
from ..monitor import loop
from ..settings import values
from .common import Seconds, db_option, for_terminal, monitor_watcher, store_for


def timeout_option(fn: Any) -> Any:
    return click.option(
        "--heartbeat-timeout", "heartbeat_timeout", default=None, metavar="SECONDS",
        type=Seconds(0, values.MAX_HEARTBEAT_TIMEOUT_S, low_open=True),
        help="Another host's run is lost when its heartbeat is older than this (more than 0, at most "
             f"{values.MAX_HEARTBEAT_TIMEOUT_S:g}) [env {values.HEARTBEAT_TIMEOUT_ENV}; "
             f"default {values.DEFAULT_HEARTBEAT_TIMEOUT_S:g}].",
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
@click.option("--interval", default=loop.DEFAULT_MONITOR_INTERVAL_S, show_default=True, metavar="SECONDS",
              type=Seconds(values.MIN_MONITOR_INTERVAL_S, values.MAX_MONITOR_INTERVAL_S),
              help=f"Seconds between two passes: reaping, schedules, runs too long ({values.MIN_MONITOR_INTERVAL_S:g} "
                   f"to {values.MAX_MONITOR_INTERVAL_S:g}). A death on this host is seen at once.")
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
    watcher, said = monitor_watcher(store, config_path) if with_alerts else (None, "alerts: off (--no-alerts)")
    loop.stop_on_signals(stop)
    click.echo(f"monitoring {safe(store.url)} every {interval:g} s", err=True)
    click.echo(said, err=True)

    def on_error(exc: Exception) -> None:
        click.echo(f"the monitor's pass failed, trying again: {_failure(exc, db)}", err=True)

    stopped = loop.run(store, stop, watcher=watcher, interval=interval, heartbeat_timeout=heartbeat_timeout,
                       on_reaped=_printer(as_json), on_error=on_error)
    click.echo("monitor stopped", err=True)
    if not stopped:
        # A send hangs in a channel (an SMTP server that never answers): Apprise's threads would hold the exit
        # until its timeout. Its delivery stays claimed and is retried when the claim runs out.
        click.echo("a channel's send was still hanging; not waiting for it", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _failure(exc: Exception, db: str | None) -> str:
    return for_terminal(f"{type(exc).__name__}: {exc}", db)


COMMANDS = [reap_command, monitor_command]
