"""The dashboard's settings: the database, the pipeline config file, the session secret, demo mode."""

from __future__ import annotations

from dataclasses import dataclass

from .state import environment

SECRET_ENV = "RUNTRACKER_WEB_SECRET"
MIN_SECRET_LENGTH = 32
# Demo mode only (`runtracker serve --demo`, `make demo`): anyone who reads this can forge a session.
DEMO_SECRET = "runtracker demo mode: this secret is public, never serve real data with it"
DEMO_USER = "demo"
DEMO_PASSWORD = "demo"

NO_SECRET = (
    "the dashboard needs a session secret: set ${env} to a random value of at least {min} characters (e.g. the "
    "output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or try it with --demo"
)
SHORT_SECRET = "${env} is too short: {length} characters, at least {min} are needed"
# A random secret of 32 characters has about 25 distinct ones; `'a' * 32` or `abababab...` has 1 or 2. The
# demo's secret is printed in this source: a real server signing with it lets anyone forge a session.
MIN_DISTINCT = 10
WEAK_SECRET = ("${env} is too easy to guess ({why}): use a random value, e.g. the output of "
               "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")


class SettingsError(ValueError):
    """A setting the dashboard cannot start with; the message says what to do."""


def session_secret(demo: bool, environ: dict[str, str] | None = None) -> str:
    """The secret that signs session cookies: ${SECRET_ENV}, required outside demo mode, at least
    MIN_SECRET_LENGTH characters; outside demo mode neither the demo's secret nor one of fewer than MIN_DISTINCT
    distinct characters."""
    value = environment(SECRET_ENV) if environ is None else environ.get(SECRET_ENV, "")
    if not value:
        if demo:
            return DEMO_SECRET
        raise SettingsError(NO_SECRET.format(env=SECRET_ENV, min=MIN_SECRET_LENGTH))
    if len(value) < MIN_SECRET_LENGTH:
        raise SettingsError(SHORT_SECRET.format(env=SECRET_ENV, length=len(value), min=MIN_SECRET_LENGTH))
    if not demo and value == DEMO_SECRET:
        raise SettingsError(WEAK_SECRET.format(env=SECRET_ENV, why="it is the demo mode's public secret"))
    if not demo and len(set(value)) < MIN_DISTINCT:
        raise SettingsError(WEAK_SECRET.format(env=SECRET_ENV, why=f"{len(set(value))} distinct characters, "
                                               f"at least {MIN_DISTINCT} are needed"))
    return value


@dataclass(frozen=True)
class WebSettings:
    """`db`: as --db (None: $RUNTRACKER_DB or the default); `config_path`: as --config (None: $RUNTRACKER_CONFIG
    or ./runtracker.toml if it exists). `login_attempts` per `login_window_s` per client; more get 429."""

    secret: str
    db: str | None = None
    config_path: str | None = None
    demo: bool = False
    login_attempts: int = 5
    login_window_s: float = 60.0
    session_max_age_s: int = 7 * 86400
    # The ingest API (docs/ingest.md): requests a second per API key, in bursts of up to `api_burst`; 0: no limit.
    api_rate: float = 50.0
    api_burst: int = 100
    # Names (or globs) of the server's environment a started pipeline also gets (`serve --pass-env`).
    pass_env: tuple[str, ...] = ()
