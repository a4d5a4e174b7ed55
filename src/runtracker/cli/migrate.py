"""`runtracker migrate --from A --to B`: copy the whole history from one database to another."""

from __future__ import annotations

import click

from ..settings.values import resolve_db
from ..storage.copy import TargetNotEmpty, copy_history
from .common import DATABASE, for_terminal, store_for

SAME_DATABASE = "--from and --to name the same database"


@click.command("migrate")
@click.option("--from", "source", required=True, type=DATABASE, metavar="PATH|URL",
              help="The database to copy from.")
@click.option("--to", "target", required=True, type=DATABASE, metavar="PATH|URL",
              help="The database to copy into (created and brought to the latest schema if needed).")
@click.option("--merge", is_flag=True,
              help="Add to a target that already has runs: copied rows get new ids, runs already there are skipped.")
def migrate_command(source: str, target: str, merge: bool) -> None:
    """Copy every run, with its steps and errors, and the dashboard's users and API keys from one database to
    another (e.g. SQLite to PostgreSQL).

    The copy is one transaction on the target. Into an empty target, ids are kept; a target that already
    has runs is refused unless --merge. The source is only read. Stop the pipelines (or point them at the
    target) first: runs written to the source during the copy are not copied. Users and API keys keep their
    password and key hashes (logins and keys still work); sessions are not copied: users log in again.
    """
    if str(resolve_db(source)) == str(resolve_db(target)):
        raise click.ClickException(SAME_DATABASE)
    src, dst = store_for(source, create=False), store_for(target)
    try:
        report = copy_history(src, dst, merge=merge)
    except TargetNotEmpty as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:  # one transaction: it was rolled back
        message = for_terminal(for_terminal(str(exc), source), target)
        raise click.ClickException(f"the copy failed and nothing was written to the target: {message}") from None
    ids = "ids kept" if report.ids_kept else "new ids"
    click.echo(f"copied {report.runs} runs, {report.steps} steps and {report.errors} errors "
               f"from {src.url} to {dst.url} ({ids})")
    if report.already_there:
        click.echo(f"skipped {report.already_there} runs the target already had")
    if report.orphans:
        click.echo(f"skipped {report.orphans} steps or errors whose run is not in the source")
    click.echo(f"copied {_count(report.users, 'user')} and {_count(report.api_keys, 'API key')}, their password "
               "and key hashes as they were: logins and keys work on the target (sessions are not copied: users "
               "log in again)")
    if report.users_there or report.api_keys_there:
        click.echo(f"kept {_count(report.users_there, 'user')} and {_count(report.api_keys_there, 'API key')} the "
                   "target already had (same user name or key), as they were there")
    if report.running:
        click.echo(f"{report.running} runs were still running in the source; they were copied as running, "
                   "and the reaper ends them on the target once their process is gone")


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


COMMANDS = [migrate_command]
