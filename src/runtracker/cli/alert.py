"""`runtracker alert test`: a test message through each configured channel."""

from __future__ import annotations

from typing import Any

import click

from .common import CONTEXT_SETTINGS, for_terminal

NO_CHANNELS = "no alert channels in the config file ({where}): add them under [alerts.channels] (docs/alerts.md)"


def config_option(fn: Any) -> Any:
    return click.option("--config", "config_path", default=None, metavar="PATH",
                        help="Pipeline config file [env RUNTRACKER_CONFIG; default ./runtracker.toml if it "
                             "exists].")(fn)


@click.group("alert", context_settings=CONTEXT_SETTINGS)
def alert_group() -> None:
    """Alerts: check that they reach people."""


@alert_group.command("test")
@click.option("--pipeline", "-p", default=None, help="Only the channels this pipeline's alerts go to.")
@config_option
def test_command(pipeline: str | None, config_path: str | None) -> None:
    """Send a test message through each configured channel (or PIPELINE's) and say which arrived; exit 1 if one
    could not be sent. Nothing is written to the database."""
    from .. import alerts
    from ..settings.configfile import ConfigError, load

    missing = alerts.missing()
    if missing:
        raise click.ClickException(missing)
    from ..alerts.channels import Channels
    from ..alerts.messages import test_message

    try:
        config = load(config_path)
        channels = Channels.make(config)
    except ConfigError as exc:
        raise click.ClickException(for_terminal(str(exc))) from None
    names = channels.for_pipeline(pipeline) if pipeline is not None else channels.names
    if not names:
        raise click.ClickException(NO_CHANNELS.format(where=config.path or "none found"))
    failed = 0
    for name in names:
        title, body = test_message(name, config.pipeline(pipeline) if pipeline is not None else None)
        error = channels.send(name, title, body)
        if error is None:
            click.echo(f"{name}: sent")
        else:
            failed += 1
            click.echo(for_terminal(f"{name}: NOT sent: {error}"))
    if failed:
        raise click.ClickException(f"{failed} of {len(names)} channel(s) could not be reached")


COMMANDS = [alert_group]
