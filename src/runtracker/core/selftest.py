"""The seed's self-test: steps with counts, errors, error lists, error counts, end_run."""

from __future__ import annotations

from .tracker import RunTracker


def run_selftest(db: object = None) -> int | None:
    tracker = RunTracker("test-pipeline", db=db)
    run_id = tracker.start_run()
    if run_id is None:
        return None
    step = tracker.start_step("test-step-1")
    tracker.end_step(step, outcome="success", created=5, updated=3, skipped=10, failed=0)
    step = tracker.start_step("test-step-2")
    tracker.record_error(step_name="test-step-2", step_id=step, member_identifier="TEST001",
                         error_message="Test error message", error_stack="Error: Test\n    at selftest")
    tracker.record_errors("test-step-2", step, [
        {"member_identifier": "TEST002", "message": "List error one"},
        {"member_identifier": "TEST003", "message": "List error two"},
    ])
    tracker.record_errors("test-step-2", step, 3)
    tracker.end_step(step, outcome="partial", created=0, updated=1, skipped=0, failed=2,
                     detail={"note": "self-test"})
    ended = tracker.end_run("partial", {"test": True, "steps": 2})
    tracker.close()
    return run_id if ended else None
