"""`runtracker exec --pipeline NAME [options] -- COMMAND [ARGS...]`."""

from __future__ import annotations

import sys

import click

from ..settings.configfile import ConfigError, load
from ..settings.pipelines import parse_kill_after, parse_tail, parse_timeout
from .common import CONTEXT_SETTINGS, db_option

NO_COMMAND = (
    "no command given for pipeline {pipeline!r}: put it after `--`, or give the pipeline a `command` in the "
    "config file ({where})"
)


class _Parsed(click.ParamType):
    """A click type from one of our parsers (durations, sizes), with its error message."""

    def __init__(self, name: str, parse: object) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> object:
        try:
            return self._parse(value)  # type: ignore[operator]
        except (ValueError, OverflowError) as exc:
            self.fail(str(exc), param, ctx)


# The same parsers, with the same ranges, as the config file's keys.
TIMEOUT = _Parsed("duration", parse_timeout)
KILL_AFTER = _Parsed("duration", parse_kill_after)
SIZE = _Parsed("size", parse_tail)


@click.command(
    "exec",
    context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True, "allow_interspersed_args": False},
)
@db_option
@click.option("--pipeline", "-p", required=True, help="The pipeline this run belongs to.")
@click.option("--lock/--no-lock", default=None,
              help="At most one running run of this pipeline per database; a second start exits 75 at once.")
@click.option("--timeout", type=TIMEOUT, default=None, metavar="DURATION",
              help="SIGTERM the command after this long (e.g. 90s, 30m, 2h; 0 = none; at most 30d); the run "
                   "records a timeout and the exit status is 124.")
@click.option("--kill-after", type=KILL_AFTER, default=None, metavar="DURATION",
              help="After the timeout's SIGTERM, SIGKILL if still running after this long (at most 1d). "
                   "[default: 10s]")
@click.option("--tail", type=SIZE, default=None, metavar="SIZE",
              help="Keep the last SIZE bytes of output with the run (e.g. 10KB, 1MB; 0 = none). [default: 10KB]")
@click.option("--config", "config_path", default=None, metavar="PATH",
              help="Pipeline config file [env RUNTRACKER_CONFIG; default ./runtracker.toml if it exists].")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def exec_command(db: str | None, pipeline: str, lock: bool | None, timeout: float | None,
                 kill_after: float | None, tail: int | None, config_path: str | None,
                 command: tuple[str, ...]) -> None:
    """Run COMMAND as a tracked run of PIPELINE and exit with its exit status.

    The command's stdout and stderr pass through unchanged, each to ours; the tail of both, in the order it
    arrived, is kept with the run. A command killed by a signal makes this process die by the same signal.
    Without COMMAND, the pipeline's `command` from the config file runs. Exit statuses of its own: 75 when
    --lock finds the pipeline running, 124 on timeout, 126/127 when the command cannot be executed / is not
    found.
    """
    from ..exec import wrapper

    try:
        config = load(config_path, schedules=False)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    configured = config.pipeline(pipeline)
    argv = command or configured.command
    if not argv:
        raise click.UsageError(NO_COMMAND.format(pipeline=pipeline, where=config.path or "none found"))
    settings = configured.settings.merged({"lock": lock, "timeout": timeout, "kill_after": kill_after, "tail": tail})
    status = wrapper.run(wrapper.ExecRequest(pipeline, tuple(argv), settings, db))
    sys.exit(status)


COMMANDS = [exec_command]
