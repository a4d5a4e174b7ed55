"""`runtracker selftest`: the seed's self-test against the configured database."""

from __future__ import annotations

import click

from ..core.selftest import run_selftest
from .common import db_option


@click.command("selftest")
@db_option
def selftest_command(db: str | None) -> None:
    """Record a test run (steps with counts, errors, error lists, error counts) and print its id."""
    run_id = run_selftest(db)
    if run_id is None:
        raise click.ClickException("the self-test could not record a run (see the log above)")
    click.echo(f"Run tracker test complete, run_id: {run_id}")


COMMANDS = [selftest_command]
