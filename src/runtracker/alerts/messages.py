"""What an alert says: the pipeline, what happened, the crash kind, the first error lines, and a link to the run.

Only what the database stores goes into a message, and the database stores only sanitised text
(`runtracker.base.sanitize`: clean, bounded, its secrets redacted — docs/redaction.md): a message shows what the
dashboard shows, no more. Channel URLs, which hold passwords, never appear in a message.
"""

from __future__ import annotations

import json
from typing import Any

from ..base.clock import iso, to_ms
from ..base.events import CRASHED, FAILED, OVERDUE, PARTIAL, RECOVERED, TOO_LONG
from ..base.outcomes import FAILURE, SUCCESS
from ..base.outcomes import PARTIAL as PARTIAL_OUTCOME
from ..base.schedule import local_time
from ..base.units import format_duration
from ..core.ending import END_OBSERVED, ESTIMATED_FROM, LOST
from ..settings.pipelines import Pipeline
from ..storage.alerts import NewAlert

ERRORS_SHOWN = 5
ERROR_LINE_LIMIT = 300


def run_event(run: dict[str, Any]) -> tuple[str, str | None] | None:
    """(event, crash kind) for an ended run: `crashed` for a crash or a reaped run (any kind but a plain exit
    status), `failed` for another failure, `partial`, or `recovered`-candidate `success`; None while running."""
    outcome = run.get("outcome")
    if outcome == FAILURE:
        summary = _summary(run)
        kind = summary.get("kind") if summary.get("crash") else None
        return (CRASHED, str(kind)) if kind and kind != "exit" else (FAILED, str(kind) if kind else None)
    if outcome == PARTIAL_OUTCOME:
        return PARTIAL, None
    if outcome == SUCCESS:
        return SUCCESS, None
    return None


def run_alert(event: str, kind: str | None, run: dict[str, Any], pipeline: Pipeline,
              errors: list[dict[str, Any]], dashboard_url: str | None) -> NewAlert:
    """The alert for a run that ended `failed`, `crashed` or `partial`, or that `recovered` its pipeline."""
    run_id = int(run["id"])
    what = {FAILED: "failed", CRASHED: "crashed", PARTIAL: "ended partial", RECOVERED: "succeeded again"}[event]
    summary = _summary(run)
    headline = f"{pipeline.title}: run {run_id} {what}"
    if event == CRASHED and kind:
        headline += f" ({kind})"
    lines = [f"{_named(pipeline)}: run {run_id} {what}."]
    tz = pipeline.watch.timezone
    started, finished = to_ms(run.get("started_at")), to_ms(run.get("finished_at"))
    if started is not None:
        ended = f", ended {local_time(finished, tz)}" if finished is not None else ""
        took = f" after {format_duration((run.get('duration_ms') or 0) / 1000)}" if finished is not None else ""
        estimate = _estimated_end(summary, tz) if finished is not None else None
        if estimate is not None:
            took = took.replace(" after ", " after at least ") + estimate
        lines.append(f"Started {local_time(started, tz)}{ended}{took}.")
    if event == CRASHED:
        reason = f" ({run['reap_reason']})" if run.get("reap_reason") else ""
        lines.append(f"Crash kind: {kind}{reason}.")
    if event in (FAILED, CRASHED) and summary.get("exit_code") is not None:
        lines.append(f"Exit status: {summary['exit_code']}.")
    if event == RECOVERED:
        lines.append("The last alert about it is over.")
    if errors and event != RECOVERED:
        lines.append("First errors:")
        lines += [f"- {_error_line(row)}" for row in errors[:ERRORS_SHOWN]]
    if dashboard_url:
        lines.append(f"{dashboard_url}/run/{run_id}")
    return NewAlert(f"{event}:run:{run_id}", event, pipeline.name, run_id, headline, "\n".join(lines))


def overdue_alert(pipeline: Pipeline, missed_ms: int, last_start: str | None, now_ms: int,
                  dashboard_url: str | None) -> NewAlert:
    """The alert for a pipeline that has not started since `missed_ms` (its key names that time)."""
    tz = pipeline.watch.timezone
    since = local_time(missed_ms, tz, now_ms)
    lines = [f"{_named(pipeline)} is overdue: it was due {since} and has not started since "
             f"(grace {format_duration(pipeline.watch.grace_s)})."]
    start_ms = to_ms(last_start)
    lines.append(f"Its last run started {local_time(start_ms, tz, now_ms)}." if start_ms is not None
                 else "It has no run in the database.")
    if pipeline.watch.schedule is not None:
        lines.append(f"Schedule: {', '.join(pipeline.watch.schedule.expressions)} ({tz}).")
    if dashboard_url:
        lines.append(f"{dashboard_url}/")
    return NewAlert(f"overdue:{pipeline.name}:{iso(missed_ms)}", OVERDUE, pipeline.name, None,
                    f"{pipeline.title}: overdue since {since}", "\n".join(lines))


def too_long_alert(pipeline: Pipeline, run: dict[str, Any], now_ms: int, dashboard_url: str | None) -> NewAlert:
    """The alert for a run still `running` past its pipeline's maximum runtime."""
    run_id = int(run["id"])
    tz = pipeline.watch.timezone
    started = to_ms(run.get("started_at")) or now_ms
    limit = format_duration(pipeline.watch.max_runtime_s or 0)
    lines = [f"{_named(pipeline)}: run {run_id} has been running for {format_duration((now_ms - started) // 1000)}, "
             f"longer than its maximum runtime of {limit}.",
             f"Started {local_time(started, tz, now_ms)} on {run.get('hostname') or 'an unknown host'}"
             + (f", pid {run['pid']}." if run.get("pid") else ".")]
    if dashboard_url:
        lines.append(f"{dashboard_url}/run/{run_id}")
    return NewAlert(f"too_long:run:{run_id}", TOO_LONG, pipeline.name, run_id,
                    f"{pipeline.title}: run {run_id} is taking too long (over {limit})", "\n".join(lines))


def test_message(channel: str, pipeline: Pipeline | None) -> tuple[str, str]:
    """(title, body) of `runtracker alert test`."""
    about = f" for {_named(pipeline)}" if pipeline is not None else ""
    return (f"runtracker: test alert through {channel}",
            f"This is a test message from runtracker{about}, sent through the channel {channel!r}. "
            "If you read this, alerts reach you there.")


def _named(pipeline: Pipeline) -> str:
    return pipeline.name if pipeline.title == pipeline.name else f"{pipeline.title} ({pipeline.name})"


def _error_line(row: dict[str, Any]) -> str:
    message = str(row.get("error_message") or "").strip().splitlines()
    text = message[0] if message else "(no message)"
    if len(text) > ERROR_LINE_LIMIT:
        text = text[: ERROR_LINE_LIMIT - 1] + "…"
    where = str(row.get("step_name") or "")
    if row.get("member_identifier"):
        where += f", member {row['member_identifier']}"
    return f"{where}: {text}" if where else text


def _estimated_end(summary: dict[str, Any], tz: str) -> str | None:
    """For a lost run whose death nobody saw: what its end was estimated from, and when it was found dead. None
    for any other run (a reaped run's summary says `end`; one reaped before summaries said it is an estimate
    too; one whose owner ended it after all has the owner's summary)."""
    if summary.get("kind") != LOST or summary.get("end") == END_OBSERVED:
        return None
    source = ESTIMATED_FROM.get(str(summary.get("estimated_from")), "its last sign of life")
    found = to_ms(summary.get("detected_at"))
    dead = f"; found dead {local_time(found, tz)}" if found is not None else ""
    return f" (the end is estimated from {source}: nobody saw it die{dead})"


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    try:
        summary = json.loads(run.get("summary_json") or "{}")
    except ValueError:
        return {}
    return summary if isinstance(summary, dict) else {}
