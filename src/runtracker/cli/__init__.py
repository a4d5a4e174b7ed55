"""The `runtracker` command (also `python -m runtracker`). Each command lives in a module of its own."""

from __future__ import annotations

import click

from .common import CONTEXT_SETTINGS


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="runtracker")
def cli() -> None:
    """Record and inspect runs of scheduled pipelines."""


def _register() -> None:
    from . import alert, config_, exec_, migrate, reap, runs, selftest, serve, user

    for module in (runs, selftest, reap, alert, exec_, migrate, serve, user, config_):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="runtracker")
