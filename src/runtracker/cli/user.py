"""`runtracker user ...`: the dashboard's users (argon2 password hashes), their sessions, and API keys (SHA-256 of
random keys) with what each may write and start."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..base.terminal import safe
from ..storage.auth import START, WRITE, Auth
from .common import CONTEXT_SETTINGS, ZONE, db_option, reading, store_for, time_text, times_zone, zone_options

MISSING_EXTRA = "the dashboard needs the web extra, which is not installed: pip install 'runtracker[web]'"
MAX_NAME = 100


def _passwords() -> Any:
    try:
        from ..web import passwords

        passwords.hasher()
    except ImportError:
        raise click.ClickException(MISSING_EXTRA) from None
    return passwords


def _auth(db: str | None) -> Auth:
    return Auth(store_for(db))


def _name(value: str) -> str:
    if not value.strip() or len(value) > MAX_NAME or not value.isprintable():
        raise click.BadParameter(f"a name is 1 to {MAX_NAME} printable characters")
    return value


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return str(password)


@click.group("user", context_settings=CONTEXT_SETTINGS)
def user_group() -> None:
    """Manage the dashboard's users and API keys."""


def _new_password_hash(password_stdin: bool) -> str:
    """A new password, prompted for (twice) or read from stdin, checked, and hashed."""
    passwords = _passwords()
    password = _read_password(password_stdin)
    problem = passwords.password_problem(password)
    if problem:
        raise click.ClickException(problem)
    return passwords.hash_password(password)


@user_group.command("add")
@db_option
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (no prompt).")
@click.option("--timezone", default=None, type=ZONE, metavar="ZONE",
              help="The time zone the dashboard shows this user's times in (e.g. Europe/Amsterdam) [default: the "
                   "browser's, else the configured one].")
def user_add(db: str | None, name: str, password_stdin: bool, timezone: str | None) -> None:
    """Add a user; the password is prompted for (twice), or read from stdin."""
    name = _name(name)
    password_hash = _new_password_hash(password_stdin)
    auth = _auth(db)
    with reading(db):
        added = auth.add_user(name, password_hash, timezone)
    if not added:
        raise click.ClickException(f"the user {safe(name)} exists already (change a password: runtracker user "
                                   "password NAME)")
    click.echo(f"added the user {safe(name)}")


@user_group.command("password")
@db_option
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (no prompt).")
def user_password(db: str | None, name: str, password_stdin: bool) -> None:
    """Set a user's password (this ends the user's sessions)."""
    password_hash = _new_password_hash(password_stdin)
    auth = _auth(db)
    with reading(db):
        changed = auth.set_password(name, password_hash)
    if not changed:
        raise click.ClickException(f"there is no user {safe(name)}")
    click.echo(f"changed the password of {safe(name)}")


@user_group.command("timezone")
@db_option
@click.argument("name")
@click.argument("zone", required=False, type=ZONE)
@click.option("--clear", is_flag=True, help="No zone of their own: the browser's, else the configured one.")
def user_timezone(db: str | None, name: str, zone: str | None, clear: bool) -> None:
    """Set the time zone the dashboard shows NAME's times in (e.g. Europe/Amsterdam), over the browser's and the
    configured one; --clear removes it."""
    if (zone is None) == (not clear):
        raise click.UsageError("give a ZONE (e.g. Europe/Amsterdam) or --clear, not both")
    auth = _auth(db)
    with reading(db):
        changed = auth.set_timezone(name, zone)
    if not changed:
        raise click.ClickException(f"there is no user {safe(name)}")
    click.echo(f"{safe(name)}'s times: {safe(zone)}" if zone else
               f"{safe(name)}'s times: the browser's zone, else the configured one")


@user_group.command("remove")
@db_option
@click.argument("name")
def user_remove(db: str | None, name: str) -> None:
    """Remove a user (their sessions end at their next request)."""
    auth = _auth(db)
    with reading(db):
        removed = auth.remove_user(name)
    if not removed:
        raise click.ClickException(f"there is no user {safe(name)}")
    click.echo(f"removed the user {safe(name)}")


@user_group.command("logout")
@db_option
@click.argument("name")
def user_logout(db: str | None, name: str) -> None:
    """End every session of a user, on every server of the database (a stolen cookie, a lost laptop)."""
    auth = _auth(db)
    with reading(db):
        ended = auth.end_sessions(name)
    if ended is None:
        raise click.ClickException(f"there is no user {safe(name)}")
    click.echo(f"ended {ended} session(s) of {safe(name)}")


@user_group.command("list")
@db_option
@zone_options
def user_list(db: str | None, utc: bool, timezone: str | None, config_path: str | None) -> None:
    """List the users and the API keys (names, dates, sessions, time zones, permissions; never a hash)."""
    zone = times_zone(config_path, utc, timezone)
    auth = _auth(db)
    with reading(db):
        users = auth.users()
        sessions = auth.session_counts()
        keys = auth.api_keys()
        permissions = auth.permissions()
    for row in users:
        demo = "; demo mode only" if row["demo_only"] else ""
        own = f"; times in {safe(row['timezone'])}" if row["timezone"] else ""
        click.echo(f"user  {safe(row['name'])}  (since {time_text(row['created_at'], zone)}; "
                   f"{sessions.get(row['id'], 0)} session(s){own}{demo})")
    for row in keys:
        used = time_text(row["last_used_at"], zone) if row["last_used_at"] else "never"
        granted = permissions.get(row["id"])
        may = [f"{verb} {safe(', '.join(granted.patterns(action)))}" for action, verb in
               ((WRITE, "writes"), (START, "starts")) if granted is not None and granted.patterns(action)]
        click.echo(f"key   {safe(row['name'])}  ({'; '.join(may) or 'read-only'}; since "
                   f"{time_text(row['created_at'], zone)}, "
                   f"last used {used})")
    if not users and not keys:
        click.echo("no users and no API keys")


@user_group.command("key-add")
@db_option
@click.argument("name")
@click.option("--write", "write", multiple=True, metavar="PIPELINE",
              help="Let the key record runs of PIPELINE through the ingest API (a name or a glob pattern such as "
                   "'sync-*'; '*' is every pipeline); repeatable. Without it the key is read-only.")
@click.option("--start", "start", multiple=True, metavar="PIPELINE",
              help="Let the key start PIPELINE (POST /api/pipeline/PIPELINE/start runs its configured command on "
                   "the server): a name or a glob pattern; repeatable. Without it the key starts nothing.")
def key_add(db: str | None, name: str, write: tuple[str, ...], start: tuple[str, ...]) -> None:
    """Make an API key for /api/ and /metrics, named NAME; it is printed once, only its hash is stored."""
    passwords = _passwords()
    name = _name(name)
    scopes = {WRITE: _patterns(write, "--write"), START: _patterns(start, "--start")}
    key = passwords.new_api_key()
    auth = _auth(db)
    with reading(db):
        key_id = auth.add_api_key(name, passwords.key_hash(key))
        for action, patterns in scopes.items():
            if patterns:
                auth.set_scope(key_id, action, patterns)
    click.echo(key)
    click.echo(f"(the API key {safe(name)}: keep it now, it cannot be shown again)", err=True)


def _patterns(values: tuple[str, ...], option: str) -> tuple[str, ...]:
    for pattern in values:
        if not pattern.strip() or len(pattern) > MAX_NAME or not pattern.isprintable():
            raise click.BadParameter(f"a pipeline or pattern is 1 to {MAX_NAME} printable characters",
                                     param_hint=option)
    return values


@user_group.command("key-remove")
@db_option
@click.argument("name")
def key_remove(db: str | None, name: str) -> None:
    """Remove every API key named NAME."""
    auth = _auth(db)
    with reading(db):
        count = auth.remove_api_keys(name)
    if not count:
        raise click.ClickException(f"there is no API key named {safe(name)}")
    click.echo(f"removed {count} API key(s) named {safe(name)}")


COMMANDS = [user_group]
