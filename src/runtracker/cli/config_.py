"""`runtracker config show`: the effective settings and where each came from, secrets masked."""

from __future__ import annotations

import json

import click

from ..base.terminal import safe
from ..settings import effective
from .common import CONTEXT_SETTINGS

SOURCES = {"argument": "argument ({where})", "environment": "environment (${where})",
           "config file": "config file ({where})", "default": "default"}


@click.group("config", context_settings=CONTEXT_SETTINGS)
def config_group() -> None:
    """Settings: what this process would use, and why."""


@config_group.command("show")
@click.option("--db", default=None, metavar="PATH|URL",
              help="Database: a path, sqlite:///path or postgresql://... "
                   "[env RUNTRACKER_DB; default ./data/dashboard.sqlite]. A wrong one is shown with its error.")
@click.option("--config", "config_path", default=None, metavar="PATH",
              help="Pipeline config file [env RUNTRACKER_CONFIG; default ./runtracker.toml if it exists].")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: {\"settings\": [{name, value, text, source, where, given, warnings}]}.")
def show_command(db: str | None, config_path: str | None, as_json: bool) -> None:
    """Print the effective settings and where each came from: an argument (--db, --config), an environment
    variable, the config file (path:line) or the default. Secrets are masked: a database URL's password, the
    session secret, alert channel URLs. A wrong value shows the value used instead and its warning, as a
    pipeline would log it. Nothing is written, and no database is opened."""
    rows = effective.describe(db, config_path)
    for row in rows:
        if row["name"] == "db" and row["source"] == "argument":
            row["where"] = "--db"
    if as_json:
        click.echo(json.dumps({"settings": rows}, indent=2))
        return
    table = [[row["name"], row["text"], SOURCES[row["source"]].format(where=row["where"])] for row in rows]
    widths = [max(len(safe(cell)) for cell in column) for column in zip(*table, strict=True)]
    for row, cells in zip(rows, table, strict=True):
        name, value, source = (safe(cell) for cell in cells)
        click.echo(f"{name.ljust(widths[0])}  {value.ljust(widths[1])}  {source}".rstrip())
        for warning in row["warnings"]:
            click.echo(f"  warning: {safe(warning)}")


COMMANDS = [config_group]
