"""Writing runs in the storage contract tests: a `running` run, an error row, and an end built from the facts."""

from __future__ import annotations

from runtracker.storage import RunEnd, Runs, StepEnd

T0 = "2026-01-01T00:00:00.000Z"
T1 = "2026-01-01T00:00:01.000Z"


def new_run(store, pipeline="nikki", started_at=T0):
    return Runs(store).insert_run(pipeline=pipeline, club_slug="rondo", started_at=started_at, hostname="h1", pid=123,
                                  process_started_at=1.5, retention_cutoff=None)


def error(run_id, step_id=None, message="boom", at=T1):
    return (run_id, step_id, "rondo", "sync", "KNVB1", message, "stack", at)


def end(store, run_id, outcome="success", *, step_outcome=None, message=None, by_owner=True, reaped=None,
        summary_json=None, exit_code=None, seen=None):
    """End a run through Runs.end_run with an end built from the facts: open steps end `step_outcome`, and
    `message` adds one error row. `seen` collects the facts the build was given."""

    def build(facts):
        if seen is not None:
            seen.append(facts)
        steps = [StepEnd(s["id"], step_outcome or outcome, T1, 7) for s in facts.open_steps]
        errors = [error(run_id, None, message)] if message else []
        return RunEnd(outcome, T1, 1000, summary_json, exit_code, steps, errors, reaped)

    return Runs(store).end_run(run_id, build, by_owner=by_owner)
