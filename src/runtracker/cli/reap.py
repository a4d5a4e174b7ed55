"""`runtracker reap` (once) and `runtracker monitor` (a loop, for a long-running service)."""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Any

import click

from .. import config, reaper
from ..terminal import safe
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
              help=f"Seconds between two passes of the reaper ({config.MIN_MONITOR_INTERVAL_S:g} to "
                   f"{config.MAX_MONITOR_INTERVAL_S:g}).")
@timeout_option
@json_option
def monitor_command(db: str | None, interval: float, heartbeat_timeout: float | None, as_json: bool) -> None:
    """Reap lost runs every few seconds until SIGTERM or Ctrl-C (run it as a service)."""
    store = store_for(db)
    stop = threading.Event()

    # The handler only sets a flag: the pass in progress finishes its transaction and the loop ends at its
    # next wait, so the database never sees half a reap.
    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)
    click.echo(f"monitoring {safe(store.url)} every {interval:g} s", err=True)

    def on_error(exc: Exception) -> None:
        click.echo(f"reaping failed, trying again in {interval:g} s: {_failure(exc, db)}", err=True)

    reaper.monitor(store, interval=interval, heartbeat_timeout=heartbeat_timeout, on_reaped=_printer(as_json),
                   stop=stop, on_error=on_error)
    click.echo("monitor stopped", err=True)


def _failure(exc: Exception, db: str | None) -> str:
    return for_terminal(f"{type(exc).__name__}: {exc}", db)


COMMANDS = [reap_command, monitor_command]
