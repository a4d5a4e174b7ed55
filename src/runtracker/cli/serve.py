"""`runtracker serve`: the web dashboard (the `web` extra: Starlette, Jinja2, uvicorn)."""

from __future__ import annotations

import logging
from typing import Any

import click

from ..base.terminal import safe
from ..monitor import loop
from ..settings.values import heartbeat_timeout_s
from .common import db_option, for_terminal, monitor_watcher, store_for

DETECTED_BY = "runtracker serve"
MISSING_EXTRA = "the dashboard needs the web extra, which is not installed: pip install 'runtracker[web]'"


def _web_modules() -> tuple[Any, Any, Any, Any]:
    """uvicorn and the dashboard's app, settings and connection handling, or a ClickException naming the extra
    to install."""
    try:
        import uvicorn

        from ..settings import web as settings
        from ..web import app, serving
    except ImportError:
        raise click.ClickException(MISSING_EXTRA) from None
    return uvicorn, app, settings, serving


@click.command("serve")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--config", "config_path", default=None, metavar="PATH",
              help="Pipeline config file, for the Start buttons [env RUNTRACKER_CONFIG; default ./runtracker.toml "
                   "if it exists].")
@click.option("--demo", is_flag=True,
              help="Demo mode: a built-in (public) session secret, and a user demo/demo if there is no user.")
@click.option("--forwarded-allow-ips", default="", metavar="IPS",
              help="Proxies whose X-Forwarded-Proto/-For are trusted (https and the client's address behind a "
                   "reverse proxy), e.g. 127.0.0.1; by default none: those headers are ignored.")
@click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(0.1, 3600), metavar="S",
              help="Close a connection whose request headers are not complete within S seconds.")
@click.option("--monitor", "with_monitor", is_flag=True,
              help="Also run `runtracker monitor` in this process: schedules and alerts besides the reaping.")
@click.option("--no-reap", "no_reap", is_flag=True,
              help="Do not end lost runs from this process (a database user that may only read; another "
                   "process reaps). By default the dashboard reaps: a run whose process died on this host at "
                   "once, another host's once its heartbeat is older than the heartbeat timeout.")
@click.option("--api-rate", default=50.0, show_default=True, type=click.FloatRange(0, 100_000), metavar="N",
              help="Ingest API requests a second per API key, in bursts of 2N; more get 429 (0: no limit).")
@click.option("--pass-env", "pass_env", multiple=True, metavar="NAME",
              help="Also pass this variable of the server's environment to pipelines Start runs (globs allowed; "
                   "repeat it). They get PATH, HOME, the locale, TZ and RUNTRACKER_* but the web secret.")
def serve_command(db: str | None, host: str, port: int, config_path: str | None, demo: bool,
                  forwarded_allow_ips: str, header_timeout: float, with_monitor: bool, no_reap: bool,
                  api_rate: float, pass_env: tuple[str, ...]) -> None:
    """Serve the web dashboard: overview, history, runs, errors, members, /health, /metrics and the API.

    It also keeps runs true: a run whose process is gone is ended as lost (the reaper of `runtracker monitor`,
    in this process; --no-reap turns it off). --monitor adds schedules and alerts.

    Needs a session secret in $RUNTRACKER_WEB_SECRET (at least 32 characters), except with --demo. Users:
    `runtracker user add NAME`.
    """
    if no_reap and with_monitor:
        raise click.UsageError("--no-reap and --monitor exclude each other: the monitor reaps")
    uvicorn, app, settings, serving = _web_modules()
    try:
        secret = settings.session_secret(demo)
    except settings.SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    store = store_for(db)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    web_settings = settings.WebSettings(secret=secret, db=db, config_path=config_path,
                                        demo=demo, api_rate=api_rate, api_burst=max(1, int(api_rate * 2)),
                                        pass_env=pass_env)
    application = app.create_app(web_settings, store)
    users = application.state.web.auth.user_count()
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    click.echo(f"runtracker dashboard on http://{shown}:{port}/ (database {for_terminal(store.url, db)})")
    if demo:
        click.echo("DEMO MODE: log in as demo / demo; the session secret is public: never serve real data with it")
    elif users == 0:
        click.echo(for_terminal("no users yet: add one with `runtracker user add NAME`"))
    stop_monitor = None
    if not no_reap:
        # The dashboard shows what the database says: a run whose process is gone must not go on showing
        # `running`. So it reaps, as `runtracker monitor` does (the same loop, alerts only with --monitor). Another
        # reaper on the same database is harmless: each end is one compare-and-set on outcome = 'running'.
        monitor_store = store_for(db)  # a connection of its own: the loop runs in another thread
        watcher, said = (monitor_watcher(monitor_store, config_path) if with_monitor
                         else (None, "schedules and alerts: off (--monitor turns them on)"))
        stop_monitor = loop.in_background(monitor_store, watcher, detected_by=DETECTED_BY)
        click.echo(f"reaping lost runs of {safe(monitor_store.url)} in this process (a death on this host at once, "
                   f"other hosts after {heartbeat_timeout_s():g} s without a heartbeat), passes every "
                   f"{loop.DEFAULT_MONITOR_INTERVAL_S:g} s; {said}", err=True)
    try:
        # No proxy is trusted unless named: uvicorn's own default trusts 127.0.0.1, so a client on this host
        # could choose its address (and its login rate-limit bucket) with X-Forwarded-For.
        uvicorn.run(application, host=host, port=port, proxy_headers=bool(forwarded_allow_ips.strip()),
                    forwarded_allow_ips=forwarded_allow_ips.strip() or None, log_level="info", server_header=False,
                    http=serving.header_deadline(header_timeout))
    finally:
        if stop_monitor is not None:
            stop_monitor()


COMMANDS = [serve_command]
