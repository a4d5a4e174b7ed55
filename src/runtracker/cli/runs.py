"""`runtracker runs` and `runtracker show RUN_ID`."""

from __future__ import annotations

import json
from typing import Any

import click

from ..base.terminal import safe
from ..storage import Runs
from .common import db_option, reading, store_for, time_text, times_zone, zone_options

MAX_RUN_ID = 2**63 - 1  # the largest id either backend can store
MAX_LIMIT = 1_000_000
TIMES = ("started_at", "finished_at", "heartbeat_at", "reaped_at")  # `show` prints these in the display zone


def _duration(ms: object) -> str:
    if not isinstance(ms, int):
        return "-"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _table(rows: list[list[object]], headers: list[str]) -> str:
    """Rows under headers, in columns; every cell one line, with its control characters escaped."""
    cells = [[safe(cell) for cell in row] for row in rows]
    widths = [max(len(x) for x in column) for column in zip(headers, *cells, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


@click.command("runs")
@db_option
@click.option("--pipeline", "-p", default=None, help="Only runs of this pipeline.")
@click.option("--outcome", default=None, type=click.Choice(["success", "partial", "failure", "running"]))
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(1, MAX_LIMIT),
              help="How many runs, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table (times in UTC, as stored).")
@zone_options
def runs_command(db: str | None, pipeline: str | None, outcome: str | None, limit: int, as_json: bool, utc: bool,
                 timezone: str | None, config_path: str | None) -> None:
    """List recent runs: pipeline, outcome, start (in the display time zone, with its offset), duration and
    counts."""
    zone = times_zone(config_path, utc, timezone) if not as_json else "UTC"
    store = store_for(db, create=False)
    with reading(db):
        runs = Runs(store).list_runs(pipeline=pipeline, outcome=outcome, limit=limit)
    if as_json:
        for run in runs:
            click.echo(json.dumps(run))
        return
    if not runs:
        click.echo("no runs")
        return
    rows: list[list[object]] = [
        [r["id"], r["pipeline"], r["outcome"], time_text(r["started_at"], zone), _duration(r["duration_ms"]),
         r["total_created"], r["total_updated"], r["total_skipped"], r["total_failed"]]
        for r in runs
    ]
    click.echo(_table(rows, ["id", "pipeline", "outcome", f"started ({zone})", "duration", "created", "updated",
                             "skipped", "failed"]))


@click.command("show")
@db_option
@click.argument("run_id", type=click.IntRange(1, MAX_RUN_ID))
@click.option("--json", "as_json", is_flag=True,
              help="Print the run, steps and errors as one JSON object (times in UTC, as stored).")
@zone_options
def show_command(db: str | None, run_id: int, as_json: bool, utc: bool, timezone: str | None,
                 config_path: str | None) -> None:
    """Show one run with its steps and errors; times in the display time zone, with its offset."""
    zone = times_zone(config_path, utc, timezone) if not as_json else "UTC"
    runs = Runs(store_for(db, create=False))
    with reading(db):
        run = runs.get_run(run_id)
        if run is None:
            raise click.ClickException(f"no run with id {run_id}")
        steps = runs.list_steps(run_id)
        errors = runs.list_errors(run_id)
        output_tail = runs.get_output_tail(run_id)  # runs of `runtracker exec`
    if as_json:
        # Exact: json.dumps escapes every control character, so the stored text comes back as it was.
        click.echo(json.dumps({"run": run, "steps": steps, "errors": errors, "output_tail": output_tail}))
        return
    click.echo(f"run {run['id']}  {safe(run['pipeline'])}  {safe(str(run['outcome']).upper())}")
    for key in ("club_slug", "started_at", "finished_at", "heartbeat_at", "hostname", "pid", "exit_code",
                "reaped_at", "reap_reason", "ended_by"):
        if run.get(key) is not None:
            value = time_text(run[key], zone, millis=True) if key in TIMES else run[key]
            click.echo(f"  {key:<13} {safe(value)}" + (f" ({zone})" if key == "started_at" else ""))
    click.echo(f"  {'duration':<13} {_duration(run['duration_ms'])}")
    click.echo(f"  {'totals':<13} created {run['total_created']}, updated {run['total_updated']}, "
               f"skipped {run['total_skipped']}, failed {run['total_failed']}")
    if run.get("summary_json"):
        click.echo(f"  {'summary':<13} {safe(run['summary_json'])}")
    click.echo("")
    _print_steps(steps)
    _print_errors(errors)
    if output_tail:
        click.echo("")
        click.echo("output (the end of it):")
        _print_lines(output_tail, "  | ")


def _print_steps(steps: list[dict[str, Any]]) -> None:
    if not steps:
        click.echo("steps: none")
        return
    rows: list[list[object]] = [
        [s["id"], s["step_name"], s["outcome"] or "(open)", _duration(s["duration_ms"]), s["created_count"],
         s["updated_count"], s["skipped_count"], s["failed_count"]]
        for s in steps
    ]
    click.echo(_table(rows, ["step", "name", "outcome", "duration", "created", "updated", "skipped", "failed"]))


def _print_errors(errors: list[dict[str, Any]]) -> None:
    click.echo("")
    if not errors:
        click.echo("errors: none")
        return
    click.echo(f"errors: {len(errors)}")
    for e in errors:
        who = f" [{safe(e['member_identifier'])}]" if e.get("member_identifier") else ""
        click.echo(f"  - {safe(e['step_name'] or '-')}{who}: {safe(e['error_message'])}")
        if e.get("error_stack") and e["step_name"] == "crash":
            _print_lines(str(e["error_stack"]).rstrip(), "      ")


def _print_lines(text: str, prefix: str) -> None:
    """Text of many lines (a stack, an output tail), each line after `prefix`. Only newlines break lines:
    everything else that would move the cursor (a lone carriage return, a form feed) is shown escaped."""
    for line in safe(text.replace("\r\n", "\n"), multiline=True).rstrip("\n").split("\n"):
        click.echo(f"{prefix}{line}")


COMMANDS = [runs_command, show_command]
