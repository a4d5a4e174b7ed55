"""A run's records (`storage.runs.Runs`), the same on every backend: what each method writes, returns and
refuses — runs, steps and errors, ends (compare-and-set, the owner over the reaper), heartbeats, retention and
clearing errors."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from runlib import T0, T1, end, error, new_run

from helpers import Db, open_fresh
from runtracker.storage import ALREADY_ENDED, ENDED, OVERRODE_REAPER, RunEnd, Runs, StepEnd
from runtracker.storage.errorfilter import ErrorFilter


def test_insert_run_returns_increasing_ids_of_running_rows(db_url):
    """insert_run stores a `running` row with its ownership facts and a first heartbeat."""
    store = open_fresh(db_url)
    a, b = new_run(store), new_run(store, "other")
    assert b > a
    run = Runs(store).get_run(a)
    assert (run["outcome"], run["hostname"], run["pid"], run["process_started_at"]) == ("running", "h1", 123, 1.5)
    assert run["heartbeat_at"] == run["started_at"] == T0
    assert [r["id"] for r in Runs(store).running_runs()] == [a, b]
    assert Runs(store).get_run(b + 1000) is None
    store.close()


def test_steps_and_errors_are_stored_and_listed_in_order(db_url):
    """insert_step / end_step / insert_errors, read back by list_steps, list_errors and count_errors."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    s1 = Runs(store).insert_step(run_id=run_id, club_slug="rondo", step_name="download", started_at=T0)
    s2 = Runs(store).insert_step(run_id=run_id, club_slug="rondo", step_name="sync", started_at=T0)
    assert Runs(store).end_step(run_id, StepEnd(s1, "success", T1, 1000, created=4, updated=3, skipped=2, failed=1,
                                  detail_json='{"pct": "100%"}'))
    assert not Runs(store).end_step(run_id, StepEnd(s2 + 1000, "success", T1, 1))
    Runs(store).insert_errors([error(run_id, s2, f"e{i} 50% done?") for i in range(30)])
    Runs(store).insert_errors([])
    steps = Runs(store).list_steps(run_id)
    assert [s["step_name"] for s in steps] == ["download", "sync"]
    assert (steps[0]["outcome"], steps[0]["created_count"], steps[0]["failed_count"]) == ("success", 4, 1)
    assert steps[0]["detail_json"] == '{"pct": "100%"}' and steps[1]["outcome"] is None
    errors = Runs(store).list_errors(run_id, limit=5)
    assert [e["error_message"] for e in errors] == [f"e{i} 50% done?" for i in range(5)]
    assert errors[0]["run_step_id"] == s2 and Runs(store).count_errors(run_id) == 30
    store.close()


def test_end_run_sums_step_counts_and_ends_open_steps_and_errors_in_one_call(db_url):
    """end_run writes totals from the steps, ends the steps still open (and only those) and adds error rows."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    s1 = Runs(store).insert_step(run_id=run_id, club_slug="rondo", step_name="a", started_at=T0)
    s2 = Runs(store).insert_step(run_id=run_id, club_slug="rondo", step_name="b", started_at=T0)
    Runs(store).end_step(run_id, StepEnd(s1, "success", T1, 5, created=10, updated=1, failed=2))
    seen = []
    assert end(store, run_id, "partial", step_outcome="failure", message="crash", summary_json='{"n": 1}',
               exit_code=0, seen=seen) == ENDED
    assert [s["id"] for s in seen[0].open_steps] == [s2] and seen[0].run["outcome"] == "running"
    run = Runs(store).get_run(run_id)
    assert (run["outcome"], run["finished_at"], run["duration_ms"], run["summary_json"], run["exit_code"]) == (
        "partial", T1, 1000, '{"n": 1}', 0)
    assert (run["total_created"], run["total_updated"], run["total_skipped"], run["total_failed"]) == (10, 1, 0, 2)
    assert run["ended_by"] == "owner" and run["reaped_at"] is None
    assert [s["outcome"] for s in Runs(store).list_steps(run_id)] == ["success", "failure"]
    assert Runs(store).count_errors(run_id) == 1 and Runs(store).running_runs() == []
    store.close()


def test_end_run_is_compare_and_set_and_changes_nothing_once_ended(db_url):
    """A second end of the same run writes neither its steps nor its errors and says it had already ended."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    assert end(store, run_id, "success") == ENDED
    step = Runs(store).insert_step(run_id=run_id, club_slug="rondo", step_name="late", started_at=T1)
    assert step is None  # an ended run takes no new steps
    assert end(store, run_id, "failure", message="late") == ALREADY_ENDED
    assert end(store, run_id + 1000, "failure") == ALREADY_ENDED
    assert Runs(store).get_run(run_id)["outcome"] == "success"
    assert Runs(store).list_steps(run_id) == [] and Runs(store).count_errors(run_id) == 0
    store.close()


def test_the_owner_overrides_the_reapers_end_once_and_keeps_its_verdict(db_url):
    """A run the reaper ended is ended again by its owner (reaped_at, reap_reason and the reaper's rows stay);
    another reaper, or a second owner end, changes nothing."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    step = Runs(store).insert_step(run_id=run_id, club_slug="rondo", step_name="a", started_at=T0)
    verdict = (T1, "heartbeat_timeout")
    assert end(store, run_id, "failure", message="process lost", by_owner=False, reaped=verdict) == ENDED
    reaped = Runs(store).get_run(run_id)
    assert (reaped["ended_by"], reaped["reaped_at"], reaped["reap_reason"]) == ("reaper", T1, "heartbeat_timeout")
    assert end(store, run_id, "failure", message="again", by_owner=False, reaped=verdict) == ALREADY_ENDED
    assert Runs(store).end_step(run_id, StepEnd(step, "success", T1, 1000, created=3))  # the owner's step end wins too
    assert end(store, run_id, "success", summary_json='{"mine": true}') == OVERRODE_REAPER
    run = Runs(store).get_run(run_id)
    assert (run["outcome"], run["summary_json"], run["total_created"]) == ("success", '{"mine": true}', 3)
    assert (run["ended_by"], run["reaped_at"], run["reap_reason"]) == ("owner", T1, "heartbeat_timeout")
    assert end(store, run_id, "failure", message="late") == ALREADY_ENDED
    assert [e["error_message"] for e in Runs(store).list_errors(run_id)] == ["process lost"]
    store.close()


def test_an_acknowledged_step_end_is_never_rewritten_by_a_later_end(db_url):
    """end_step of a step that an end already closed returns False; an owner's own step end is not rewritten."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    done = Runs(store).insert_step(run_id=run_id, club_slug="rondo", step_name="done", started_at=T0)
    Runs(store).end_step(run_id, StepEnd(done, "success", T1, 1000, created=5))
    assert end(store, run_id, "failure", step_outcome="failure") == ENDED
    assert not Runs(store).end_step(run_id, StepEnd(done, "partial", T1, 1000, created=9))
    (step,) = Runs(store).list_steps(run_id)
    assert (step["outcome"], step["created_count"]) == ("success", 5)
    store.close()


def test_counts_beyond_the_maximum_left_by_another_writer_never_make_a_run_impossible_to_end(db_url):
    """Step counts above 2^31 - 1 written by hand are capped in the totals: the run still ends."""
    # PostgreSQL's count columns hold at most 2^31 - 1 themselves; three of them overflow a 32-bit total.
    huge, counted = (2_000_000_000, 2_000_000_000) if db_url.startswith("postgresql") else (9 * 10**18, 2**31 - 1)
    store = open_fresh(db_url)
    run_id = new_run(store)
    for _ in range(3):
        step = Runs(store).insert_step(run_id=run_id, club_slug="rondo", step_name="s", started_at=T0)
        with store.transaction() as cur:
            cur.execute(store.sql("UPDATE run_steps SET created_count = ?, finished_at = ? WHERE id = ?"),
                        (huge, T1, step))
    assert end(store, run_id, "success") == ENDED
    assert Runs(store).get_run(run_id)["total_created"] == 3 * counted
    store.close()


def test_touch_heartbeat_moves_only_running_runs(db_url):
    """touch_heartbeat updates heartbeat_at of the given runs that are still running."""
    store = open_fresh(db_url)
    a, b = new_run(store), new_run(store)
    end(store, b)
    Runs(store).touch_heartbeat([a, b], "2026-01-01T00:00:09.000Z")
    Runs(store).touch_heartbeat([], "2030-01-01T00:00:00.000Z")
    assert Runs(store).get_run(a)["heartbeat_at"] == "2026-01-01T00:00:09.000Z"
    assert Runs(store).get_run(b)["heartbeat_at"] == T0
    store.close()


def test_retention_deletes_finished_runs_before_the_cutoff_with_children(db_url):
    """delete_runs_before removes old finished runs, their steps and errors; running and newer runs stay."""
    store = open_fresh(db_url)
    old, stuck, new = new_run(store), new_run(store), new_run(store, started_at="2026-06-01T00:00:00.000Z")
    for run_id in (old, new):
        step = Runs(store).insert_step(run_id=run_id, club_slug=None, step_name="s", started_at=T0)
        Runs(store).insert_errors([error(run_id, step)])
        end(store, run_id)
    assert Runs(store).delete_runs_before("2026-03-01T00:00:00.000Z") == 1
    assert [r["id"] for r in Runs(store).list_runs()] == [new, stuck]
    assert Runs(store).list_steps(old) == [] and Runs(store).count_errors(old) == 0
    assert Runs(store).count_errors(new) == 1
    store.close()


def test_list_runs_filters_and_pages_newest_first(db_url):
    """list_runs filters by pipeline and outcome, limits, and pages backwards with before_id."""
    store = open_fresh(db_url)
    ids = [new_run(store, "nikki" if i % 2 else "laposta") for i in range(7)]
    end(store, ids[1], "failure")
    assert [r["id"] for r in Runs(store).list_runs(limit=3)] == ids[::-1][:3]
    assert [r["id"] for r in Runs(store).list_runs(limit=3, before_id=ids[4])] == [ids[3], ids[2], ids[1]]
    assert [r["id"] for r in Runs(store).list_runs(pipeline="nikki")] == [ids[5], ids[3], ids[1]]
    assert [r["id"] for r in Runs(store).list_runs(pipeline="nikki", outcome="failure")] == [ids[1]]
    store.close()


@contextmanager
def holding_the_run(url, run_id):
    """Another connection blocks writers of the run until the block ends (SQLite: the write lock; PostgreSQL:
    the run's row)."""
    store = open_fresh(url)
    with store.transaction() as cur:
        cur.execute(store.sql("UPDATE runs SET heartbeat_at = heartbeat_at WHERE id = ?"), (run_id,))
        yield
    store.close()


def test_two_enders_racing_leave_one_consistent_record(db_url):
    """Two stores ending the same run at the same moment: one wins; only the winner's steps and errors exist."""
    store = open_fresh(db_url)
    run_id = new_run(store)
    Runs(store).insert_step(run_id=run_id, club_slug=None, step_name="s", started_at=T0)
    store.close()
    results: dict[str, str] = {}

    def race(outcome):
        s = open_fresh(db_url)
        results[outcome] = end(s, run_id, outcome, message=outcome)
        s.close()

    with holding_the_run(db_url, run_id):
        threads = [threading.Thread(target=race, args=(o,)) for o in ("success", "failure")]
        for t in threads:
            t.start()
        threads[0].join(0.5)
    for t in threads:
        t.join(30)
    assert sorted(results.values()) == [ALREADY_ENDED, ENDED]
    winner = next(o for o, result in results.items() if result == ENDED)
    db = Db(db_url)
    assert db.run(run_id)["outcome"] == winner
    assert [s["outcome"] for s in db.steps(run_id)] == [winner]
    assert [e["error_message"] for e in db.errors(run_id)] == [winner]


def test_an_exec_lock_is_held_by_one_running_run_and_freed_by_its_end(db_url):
    """insert_run with a lock_key refuses a second holder (None); lock_holder names the holder until it ends;
    the end's output tail is read back by get_output_tail."""
    store = open_fresh(db_url)
    runs = Runs(store)
    facts = {"club_slug": None, "started_at": T0, "hostname": "h1", "pid": 1, "process_started_at": None,
             "retention_cutoff": None, "lock_key": "nikki"}
    holder = runs.insert_run(pipeline="nikki", **facts)
    assert holder is not None and runs.insert_run(pipeline="nikki", **facts) is None
    assert runs.lock_holder("nikki")["id"] == holder and runs.lock_holder("laposta") is None
    assert runs.end_run(holder, lambda _: RunEnd("success", T1, 1000, output_tail="last line\n")) == ENDED
    assert runs.lock_holder("nikki") is None and runs.get_output_tail(holder) == "last line\n"
    assert runs.insert_run(pipeline="nikki", **facts) is not None
    assert runs.get_output_tail(holder + 1000) is None
    store.close()


def test_clear_errors_deletes_what_the_filter_matches_and_keeps_crash_rows(db_url):
    """clear_errors by pipeline (run by run), by step and member, by time and by text (its `%` and `_` taken
    literally, case-insensitive on both backends): only matching rows go, a crash row never does."""
    store = open_fresh(db_url)
    runs = Runs(store)
    nikki, laposta = new_run(store, "nikki"), new_run(store, "laposta")
    for run_id in (nikki, laposta):
        runs.insert_errors([(run_id, None, "rondo", "sync", "M1", "50% done", None, T0),
                            (run_id, None, "rondo", "sync", "M2", "500 done", None, T1),
                            (run_id, None, "rondo", "load", "M1", "member NOT found", None, T1),
                            (run_id, None, "rondo", "crash", None, "killed", None, T1)])

    def left(run_id):
        return [(e["step_name"], e["member_identifier"], e["error_message"]) for e in runs.list_errors(run_id)]

    assert runs.clear_errors(ErrorFilter(text="50%")) == 2
    assert ("sync", "M2", "500 done") in left(nikki) and ("sync", "M1", "50% done") not in left(laposta)
    assert runs.clear_errors(ErrorFilter(step="load", member="M1", text="not FOUND")) == 2
    assert runs.clear_errors(ErrorFilter(pipeline="nikki", since=T1, until="2026-01-01T00:00:02.000Z")) == 1
    assert left(nikki) == [("crash", None, "killed")]
    assert left(laposta) == [("sync", "M2", "500 done"), ("crash", None, "killed")]
    assert runs.clear_errors(ErrorFilter()) == 1 and runs.count_errors(laposta) == 1
    store.close()
