"""Options and helpers shared by the commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..storage import Store, open_store

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


def db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db", envvar="RUNTRACKER_DB", default=None, metavar="PATH|URL",
        help="Database: a path, sqlite:///path or postgresql://... "
        "[env RUNTRACKER_DB; default ./data/dashboard.sqlite]",
    )(fn)


def store_for(db: str | None) -> Store:
    try:
        return open_store(db)
    except Exception as exc:
        raise click.ClickException(f"cannot open the database {db or '(default)'}: {exc}") from exc
