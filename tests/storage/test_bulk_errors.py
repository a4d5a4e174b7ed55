"""Many error rows in one call: written as multi-row INSERTs in chunks, every row kept, in order, on every backend."""

from __future__ import annotations

from helpers import open_fresh
from runtracker import RunTracker
from runtracker.storage import Runs

T0 = "2026-01-01T00:00:00.000Z"


def test_insert_errors_across_chunk_boundaries_keeps_every_row_in_order(db_url):
    """One row, exactly one chunk, and a chunk and a half all arrive whole and in order."""
    store = open_fresh(db_url)
    run_id = Runs(store).insert_run(pipeline="nikki", club_slug="rondo", started_at=T0, hostname="h", pid=1,
                                    process_started_at=None, retention_cutoff=None)
    per = Runs.ERRORS_PER_INSERT
    sizes = [1, per, per + per // 2]
    expected = []
    for size in sizes:
        rows = [(run_id, None, "rondo", "sync", f"KNVB{len(expected) + i}", f"message {len(expected) + i}", None, T0)
                for i in range(size)]
        Runs(store).insert_errors(rows)
        expected += [row[4] for row in rows]
    stored = Runs(store).list_errors(run_id, limit=10 * per)
    assert [e["member_identifier"] for e in stored] == expected
    assert stored[-1]["error_message"] == f"message {len(expected) - 1}" and stored[-1]["error_stack"] is None
    store.close()


def test_record_errors_with_thousands_of_dicts_records_them_all(db_url):
    """record_errors with 2,500 dicts in one call stores 2,500 rows against its step."""
    tracker = RunTracker("nikki", db=db_url)
    run_id = tracker.start_run()
    step_id = tracker.start_step("sync")
    tracker.record_errors("sync", step_id, [{"member_identifier": f"KNVB{i}", "message": "not found"}
                                            for i in range(2500)])
    tracker.end_step(step_id, "partial", failed=2500)
    tracker.end_run("partial")
    store = open_fresh(db_url)
    assert Runs(store).count_errors(run_id) == 2500
    rows = Runs(store).list_errors(run_id, limit=3000)
    assert {r["run_step_id"] for r in rows} == {step_id}
    assert rows[0]["member_identifier"] == "KNVB0" and rows[-1]["member_identifier"] == "KNVB2499"
    store.close()
