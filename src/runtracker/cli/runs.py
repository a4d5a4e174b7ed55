"""`runtracker runs` and `runtracker show RUN_ID`."""

from __future__ import annotations

import json
from typing import Any

import click

from .common import db_option, store_for


def _duration(ms: object) -> str:
    if not isinstance(ms, int):
        return "-"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


@click.command("runs")
@db_option
@click.option("--pipeline", "-p", default=None, help="Only runs of this pipeline.")
@click.option("--outcome", default=None, type=click.Choice(["success", "partial", "failure", "running"]))
@click.option("--limit", "-n", default=20, show_default=True, help="How many runs, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def runs_command(db: str | None, pipeline: str | None, outcome: str | None, limit: int, as_json: bool) -> None:
    """List recent runs: pipeline, outcome, start, duration and counts."""
    runs = store_for(db).list_runs(pipeline=pipeline, outcome=outcome, limit=limit)
    if as_json:
        for run in runs:
            click.echo(json.dumps(run))
        return
    if not runs:
        click.echo("no runs")
        return
    rows = [
        [str(r["id"]), r["pipeline"], r["outcome"], r["started_at"], _duration(r["duration_ms"]),
         str(r["total_created"]), str(r["total_updated"]), str(r["total_skipped"]), str(r["total_failed"])]
        for r in runs
    ]
    click.echo(_table(rows, ["id", "pipeline", "outcome", "started", "duration", "created", "updated",
                             "skipped", "failed"]))


@click.command("show")
@db_option
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the run, steps and errors as one JSON object.")
def show_command(db: str | None, run_id: int, as_json: bool) -> None:
    """Show one run with its steps and errors."""
    store = store_for(db)
    run = store.get_run(run_id)
    if run is None:
        raise click.ClickException(f"no run with id {run_id}")
    steps = store.list_steps(run_id)
    errors = store.list_errors(run_id)
    output_tail = store.get_output_tail(run_id)  # runs of `runtracker exec`
    if as_json:
        click.echo(json.dumps({"run": run, "steps": steps, "errors": errors, "output_tail": output_tail}))
        return
    click.echo(f"run {run['id']}  {run['pipeline']}  {run['outcome'].upper()}")
    for key in ("club_slug", "started_at", "finished_at", "heartbeat_at", "hostname", "pid", "exit_code",
                "reaped_at", "reap_reason", "ended_by"):
        if run.get(key) is not None:
            click.echo(f"  {key:<13} {run[key]}")
    click.echo(f"  {'duration':<13} {_duration(run['duration_ms'])}")
    click.echo(f"  {'totals':<13} created {run['total_created']}, updated {run['total_updated']}, "
               f"skipped {run['total_skipped']}, failed {run['total_failed']}")
    if run.get("summary_json"):
        click.echo(f"  {'summary':<13} {run['summary_json']}")
    click.echo("")
    _print_steps(steps)
    _print_errors(errors)
    if output_tail:
        click.echo("")
        click.echo("output (the end of it):")
        for line in output_tail.rstrip("\n").splitlines():
            click.echo(f"  | {line}")


def _print_steps(steps: list[dict[str, Any]]) -> None:
    if not steps:
        click.echo("steps: none")
        return
    rows = [[str(s["id"]), s["step_name"], s["outcome"] or "(open)", _duration(s["duration_ms"]),
             str(s["created_count"]), str(s["updated_count"]), str(s["skipped_count"]), str(s["failed_count"])]
            for s in steps]
    click.echo(_table(rows, ["step", "name", "outcome", "duration", "created", "updated", "skipped", "failed"]))


def _print_errors(errors: list[dict[str, Any]]) -> None:
    click.echo("")
    if not errors:
        click.echo("errors: none")
        return
    click.echo(f"errors: {len(errors)}")
    for e in errors:
        who = f" [{e['member_identifier']}]" if e.get("member_identifier") else ""
        click.echo(f"  - {e['step_name'] or '-'}{who}: {e['error_message']}")
        if e.get("error_stack") and e["step_name"] == "crash":
            for line in str(e["error_stack"]).rstrip().splitlines():
                click.echo(f"      {line}")


COMMANDS = [runs_command, show_command]
