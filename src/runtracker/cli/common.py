"""Options, types and helpers shared by the commands.

A user's mistake is a usage error (exit 2) with a message, a database that cannot be used is `Error: ...`
(exit 1): never a traceback. A password in a database URL never reaches a message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import click
from click.core import ParameterSource

from ..base import zones
from ..base.clock import to_ms
from ..base.terminal import safe
from ..settings import display
from ..settings.state import SETTINGS, environment
from ..settings.values import DB_ENV, resolve_db
from ..storage import ForeignDatabase, NoDatabase, Store, open_store
from ..storage.postgres import masked

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

NO_DATABASE = "{reason}; nothing was created (check --db or ${env})"
CANNOT_OPEN = "cannot open the database {db}: {error}"
CANNOT_READ = "cannot read the database {db}: {error}"
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")  # with an empty user too (postgresql://:pw@host)
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('[^']*'|[^\s&]+)", re.IGNORECASE)  # also libpq's key=value


class DatabaseType(click.ParamType):
    """A path or URL that `settings.values.resolve_db` accepts; an unknown scheme (`mysql://`) is a usage error. The
    value is kept as it was written."""

    name = "database"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            resolve_db(value)
        except (TypeError, ValueError) as exc:
            source = ctx.get_parameter_source(param.name) if ctx is not None and param and param.name else None
            came_from = f" (from ${DB_ENV})" if source is ParameterSource.ENVIRONMENT else ""
            self.fail(hide_password(str(exc), value) + came_from, param, ctx)
        return value


class Seconds(click.ParamType):
    """A finite number of seconds from `low` (exclusive when `low_open`) to `high`; NaN and infinity are not."""

    name = "seconds"

    def __init__(self, low: float, high: float, *, low_open: bool = False) -> None:
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        above_low = seconds > self.low if self.low_open else seconds >= self.low
        if not (math.isfinite(seconds) and above_low and seconds <= self.high):
            limits = (f"more than {self.low:g} and at most {self.high:g}" if self.low_open
                      else f"from {self.low:g} to {self.high:g}")
            self.fail(f"{value!r} is not a number of seconds {limits}", param, ctx)
        return seconds


class ZoneType(click.ParamType):
    """A time zone name this machine knows (`Europe/Amsterdam`, `UTC`); anything else is a usage error."""

    name = "zone"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        problem = display.problem(value)
        if problem is not None:
            self.fail(f"{safe(str(value))!r} is {problem}", param, ctx)
        return value


DATABASE = DatabaseType()
ZONE = ZoneType()


def db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db", envvar=DB_ENV, default=None, type=DATABASE, metavar="PATH|URL",
        help="Database: a path, sqlite:///path or postgresql://... "
        "[env RUNTRACKER_DB; default ./data/dashboard.sqlite]",
    )(fn)


def zone_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`--utc`, `--timezone ZONE` and `--config PATH`: the zone a command prints times in (`times_zone`)."""
    fn = click.option("--config", "config_path", default=None, metavar="PATH",
                      help="Pipeline config file, for its [dashboard] timezone [env RUNTRACKER_CONFIG; default "
                           "./runtracker.toml if it exists].")(fn)
    fn = click.option("--timezone", "timezone", default=None, type=ZONE, metavar="ZONE",
                      help="Print times in ZONE, e.g. Europe/Amsterdam [default: $RUNTRACKER_TIMEZONE, else the "
                           "config file's [dashboard] timezone, else its [defaults] timezone, else $TZ, else "
                           "UTC].")(fn)
    return click.option("--utc", is_flag=True, help="Print times in UTC, as stored.")(fn)


def times_zone(config_path: str | None, utc: bool, timezone: str | None) -> str:
    """The zone the command prints times in (settings/display.for_commands). A config file that cannot be used
    and a wrong zone name are warnings on stderr: the times are printed all the same."""
    from ..settings import configfile

    if utc and timezone:
        raise click.UsageError("--utc and --timezone exclude each other")
    config = None
    if not utc and not timezone:
        try:
            config = configfile.load(config_path, schedules=False)
        except configfile.ConfigError as exc:
            click.echo(f"runtracker: {for_terminal(str(exc))}; its [dashboard] timezone is not used", err=True)
    setting = display.for_commands(config, utc=utc, zone=timezone)
    for warning in setting.warnings:
        if warning not in SETTINGS.warned:
            SETTINGS.warned.add(warning)
            click.echo(for_terminal(warning), err=True)
    return str(setting.value)


def time_text(value: object, zone: str, *, millis: bool = False) -> str:
    """A stored time in `zone`, with its offset (`2026-03-29 03:15:00 +02:00`); "-" for none, and the stored
    text itself when it is not a time (a row written by another tool)."""
    if value is None:
        return "-"
    at = to_ms(value)
    return str(value) if at is None else zones.offset_text(at, zone, millis=millis)


def store_for(db: str | None, *, create: bool = True) -> Store:
    """The store of `db`; `create=False` (read-only commands) creates no file, directory or table."""
    try:
        store = open_store(db, create=create)
    except NoDatabase as exc:
        raise click.ClickException(NO_DATABASE.format(reason=for_terminal(str(exc), db), env=DB_ENV)) from None
    except ForeignDatabase as exc:
        raise click.ClickException(for_terminal(str(exc), db)) from None  # it says the database is untouched
    except Exception as exc:
        raise click.ClickException(CANNOT_OPEN.format(db=shown_db(db), error=_error(exc, db))) from None
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(store.close)  # when the command is done (in-process callers: tests) too
    return store


def monitor_watcher(store: Store, config_path: str | None) -> tuple[Any, str]:
    """The monitor's alerts watcher and the line that says what it watches (`monitor.loop.alerts_watcher`), for
    `monitor` and `serve --monitor`. A config file that cannot be used is an error (exit 1) before anything runs."""
    from ..monitor import loop
    from ..settings.configfile import ConfigError

    try:
        return loop.alerts_watcher(store, config_path)
    except ConfigError as exc:
        raise click.ClickException(for_terminal(str(exc))) from None


@contextmanager
def reading(db: str | None) -> Iterator[None]:
    """Turn a failure while reading the database into `Error: cannot read the database ...` (exit 1)."""
    try:
        yield
    except click.ClickException:
        raise
    except Exception as exc:
        raise click.ClickException(CANNOT_READ.format(db=shown_db(db), error=_error(exc, db))) from None


def shown_db(db: str | None) -> str:
    """The database as messages name it, its password masked."""
    return for_terminal(db or environment(DB_ENV) or "(default)", db)


def hide_password(text: str, db: object = None) -> str:
    """`text` with the password of any URL or `password=` in it masked, and the password of `db` (else
    $RUNTRACKER_DB) replaced wherever else it appears, decoded too."""
    text = _KEYWORD_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", masked(text)))
    source = db if isinstance(db, str) and db else environment(DB_ENV)
    for password in _passwords(source):
        # Outside a URL only: a password of a few characters would garble every word that contains it (and
        # the URLs that hold it are masked above whatever its length).
        if len(password) >= 4:
            text = text.replace(password, "***")
    return text


def _passwords(url: str) -> list[str]:
    found: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            found.append(parts.password)
        found += parse_qs(parts.query).get("password", [])
    except ValueError:  # not a URL at all
        return []
    found += [unquote(p) for p in found]
    return sorted({p for p in found if p}, key=len, reverse=True)


def _error(exc: BaseException, db: str | None) -> str:
    return for_terminal(str(exc) or type(exc).__name__, db)


def for_terminal(text: str, db: object = None) -> str:
    """A message for the terminal: the password of `db` or of any URL masked, control characters (from a
    path, say) escaped; line breaks kept."""
    return safe(hide_password(text, db), multiline=True)
