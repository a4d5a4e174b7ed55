"""The display time zone: the zone in which the dashboard and the command line show times.

Times are stored in UTC; people read them in their own zone. Which zone (docs/settings.md#the-display-time-zone):

- **configured** (`configured`), for everyone: `$RUNTRACKER_TIMEZONE`, else the config file's `[dashboard]
  timezone`, else its `[defaults] timezone` (the zone its schedules are written in), else UTC. The server's own
  zone is not used: a server's zone (often UTC in a container) says nothing about where its readers are.
- **a page** (`web/core.Web.display_zone`): the user's own zone (`runtracker user timezone NAME ZONE`), else the
  browser's (its script sets the cookie BROWSER_COOKIE), else the configured one.
- **a command** (`for_commands`): `--utc` or `--timezone ZONE`, else the configured one, else `$TZ` (the
  machine's zone, when it is a zone name), else UTC.

A wrong name never stops anything: a configured one is a warning (once per process, as every setting's) and
UTC is used; a user's or a browser's that this machine does not know is skipped for the next choice.
"""

from __future__ import annotations

from ..base import zones
from .checks import shown
from .pipelines import PipelineConfig
from .state import ARGUMENT, CONFIG_FILE, DEFAULT, ENVIRONMENT, Setting, environment

TIMEZONE_ENV = "RUNTRACKER_TIMEZONE"
TZ_ENV = "TZ"
# The cookie the dashboard's script sets to the browser's zone (Intl.DateTimeFormat().resolvedOptions()).
BROWSER_COOKIE = "runtracker_tz"

# Where a page's zone came from, besides the settings' sources.
USER = "user"
BROWSER = "browser"

INSTEAD = "UTC (times are shown in UTC)"


def configured(config: PipelineConfig | None = None, name: str = "timezone") -> Setting:
    """The configured display zone as a Setting (its warnings not logged: `SETTINGS.warn` does that)."""
    given = environment(TIMEZONE_ENV).strip()
    if given:
        return _checked(name, given, ENVIRONMENT, TIMEZONE_ENV, f"{TIMEZONE_ENV}={shown(given)} (environment variable)")
    if config is not None and config.display_timezone is not None:
        place = config.place("dashboard", "timezone")
        return _checked(name, config.display_timezone, CONFIG_FILE, place,
                        f"{place}: [dashboard] timezone={shown(config.display_timezone)} (config file)")
    if config is not None and ("defaults", "timezone") in config.lines:
        place = config.place("defaults", "timezone")
        return _checked(name, config.default_watch.timezone, CONFIG_FILE, place,
                        f"{place}: [defaults] timezone={shown(config.default_watch.timezone)} (config file)")
    return Setting(name, zones.DEFAULT)


def for_commands(config: PipelineConfig | None = None, *, utc: bool = False, zone: str | None = None) -> Setting:
    """The zone `runtracker runs`, `show` and `user list` print times in: `--utc`, else `--timezone` (checked
    by the command line: a wrong one is a usage error), else the configured one, else $TZ, else UTC."""
    if utc:
        return Setting("cli_timezone", zones.DEFAULT, ARGUMENT, "--utc", True)
    if zone:
        return _checked("cli_timezone", zone, ARGUMENT, "--timezone", f"--timezone {shown(zone)}")
    found = configured(config, "cli_timezone")
    if found.source != DEFAULT:
        return found
    machine = environment(TZ_ENV).strip()
    if not machine:
        return found
    # glibc reads `:Europe/Amsterdam` as the zone file's name, as `Europe/Amsterdam`.
    return _checked("cli_timezone", machine[1:] if machine.startswith(":") else machine, ENVIRONMENT, TZ_ENV,
                    f"{TZ_ENV}={shown(machine)} (environment variable)")


def usable(name: object) -> str | None:
    """`name` if it is a zone this machine knows (a user's setting, a browser's cookie), else None."""
    return name if isinstance(name, str) and zones.is_zone(name) else None


def problem(name: object) -> str | None:
    """What is wrong with a zone name, or None: for the command line's checks."""
    return None if usable(name) else f"{zones.NOT_A_ZONE} ({zones.HINT})"


def _checked(name: str, raw: object, source: str, where: str, label: str) -> Setting:
    if usable(raw) is not None:
        return Setting(name, raw, source, where, raw)
    warning = f"runtracker: {label} is {zones.NOT_A_ZONE} ({zones.HINT}); using {INSTEAD}"
    return Setting(name, zones.DEFAULT, source, where, raw, (warning,))
