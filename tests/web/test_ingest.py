"""The ingest API's endpoints over HTTP (Starlette's TestClient), on SQLite and PostgreSQL: what each one writes,
the same rows as the Python API, pings, and every refusal with its status and the field it names."""

from __future__ import annotations

import pytest
from ingestlib import auth, write_key
from starlette.testclient import TestClient

from helpers import Db
from runtracker import RunTracker
from runtracker.base import sanitize
from runtracker.core.state import STATE

RUN_FIELDS = ("pipeline", "club_slug", "outcome", "total_created", "total_updated", "total_skipped", "total_failed",
              "summary_json", "exit_code", "ended_by")
STEP_FIELDS = ("club_slug", "step_name", "outcome", "created_count", "updated_count", "skipped_count",
               "failed_count", "detail_json")
ERROR_FIELDS = ("club_slug", "step_name", "member_identifier", "error_message", "error_stack")


@pytest.fixture
def key(app) -> str:
    return write_key(app)


@pytest.fixture
def http(app) -> TestClient:
    return TestClient(app, follow_redirects=False)


def _open(http: TestClient, key: str, pipeline: str = "nikki", **body) -> int:
    response = http.post("/api/runs", json={"pipeline": pipeline, **body}, headers=auth(key))
    assert response.status_code == 201, response.text
    return int(response.json()["run_id"])


def _step(http: TestClient, key: str, run_id: int, name: str = "nikki-sync") -> int:
    response = http.post(f"/api/runs/{run_id}/steps", json={"name": name}, headers=auth(key))
    assert response.status_code == 201, response.text
    return int(response.json()["step_id"])


def _tail(db_url: str, run_id: int) -> str | None:
    return Db(db_url).query("SELECT output_tail FROM runs WHERE id = ?", (run_id,))[0]["output_tail"]


def _pick(row: dict, names: tuple[str, ...]) -> dict:
    return {name: row[name] for name in names}


def test_a_run_over_http_writes_the_rows_the_python_api_writes(http, key, db_url):
    """The same run recorded through RunTracker and through the ingest API leaves the same runs, steps and errors
    rows (ids, times and owner facts aside), text cleaned and cut the same way."""
    long_message = "x\x00" * 3000
    tracker = RunTracker("nikki", db=db_url)
    tracker.start_run()
    step = tracker.start_step("nikki-sync")
    tracker.record_errors("nikki-sync", step, [{"member_identifier": "KNVB1004", "message": long_message},
                                               {"message": "timeout", "stack": "at sync"}])
    tracker.end_step(step, "partial", created=14, updated=9, skipped=13, failed=2, detail={"file": "a.csv"})
    tracker.end_run("partial", {"contributions": 40})

    run_id = _open(http, key)
    step_id = _step(http, key, run_id)
    assert http.post(f"/api/runs/{run_id}/errors", headers=auth(key), json=[
        {"member_identifier": "KNVB1004", "message": long_message, "step_name": "nikki-sync", "step_id": step_id},
        {"message": "timeout", "stack": "at sync", "step_name": "nikki-sync", "step_id": step_id},
    ]).status_code == 201
    assert http.patch(f"/api/runs/{run_id}/steps/{step_id}", headers=auth(key), json={
        "outcome": "partial", "created": 14, "updated": 9, "skipped": 13, "failed": 2,
        "detail": {"file": "a.csv"}}).status_code == 200
    ended = http.post(f"/api/runs/{run_id}/end", json={"outcome": "partial", "stats": {"contributions": 40}},
                      headers=auth(key))
    assert ended.status_code == 200 and ended.json()["result"] == "ended"

    db = Db(db_url)
    python_run, http_run = db.runs()
    assert _pick(http_run, RUN_FIELDS) == _pick(python_run, RUN_FIELDS)
    python_steps = [_pick(s, STEP_FIELDS) for s in db.steps(python_run["id"])]
    assert [_pick(s, STEP_FIELDS) for s in db.steps(run_id)] == python_steps
    http_errors = [_pick(e, ERROR_FIELDS) for e in db.errors(run_id)]
    assert http_errors == [_pick(e, ERROR_FIELDS) for e in db.errors(python_run["id"])]
    message = http_errors[0]["error_message"]
    assert len(message) == sanitize.MESSAGE_LIMIT and "\x00" not in message
    assert http_run["duration_ms"] >= 0 and http_run["total_created"] == 14


def test_an_http_run_is_owned_by_its_key_and_records_no_host_pid_or_heartbeat(http, key, db_url):
    """The run names its key (started_by api:<name>, process_key api-key:<id>), has no host, pid or heartbeat
    (so the reaper judges it as owner-less until it beats), and is not one of the server process's runs."""
    run_id = _open(http, key, club_slug="knvb")
    run = Db(db_url).run(run_id)
    assert run["outcome"] == "running" and run["started_by"] == "api:node" and run["club_slug"] == "knvb"
    assert run["process_key"].startswith("api-key:")
    assert (run["hostname"], run["pid"], run["heartbeat_at"], run["process_started_at"]) == (None,) * 4
    assert STATE.open_runs() == []


def test_step_counts_are_clamped_like_the_python_apis(http, key, db_url):
    """Negative counts become 0, fractions are cut, counts past 2^31-1 are clamped, a missing count is 0."""
    run_id = _open(http, key)
    step_id = _step(http, key, run_id)
    response = http.patch(f"/api/runs/{run_id}/steps/{step_id}", headers=auth(key),
                          json={"outcome": "success", "created": -5, "updated": 3.7, "skipped": 10**12})
    assert response.status_code == 200
    step = Db(db_url).steps(run_id)[0]
    assert (step["created_count"], step["updated_count"], step["skipped_count"], step["failed_count"]) == \
        (0, 3, sanitize.MAX_COUNT, 0)
    assert step["outcome"] == "success" and step["finished_at"] is not None and step["duration_ms"] >= 0


def test_an_error_without_a_step_goes_to_the_step_in_progress_as_record_error_does(http, key, db_url):
    """No step given: the latest open step's name; none open: `(run)`; a step_id: that step's name and link."""
    run_id = _open(http, key)
    assert http.post(f"/api/runs/{run_id}/errors", json={"message": "early"}, headers=auth(key)).status_code == 201
    first = _step(http, key, run_id, "download")
    _step(http, key, run_id, "sync")
    assert http.post(f"/api/runs/{run_id}/errors", json={"message": "late", "member_identifier": 1004},
                     headers=auth(key)).json() == {"run_id": run_id, "recorded": 1}
    assert http.post(f"/api/runs/{run_id}/errors", json=[{"message": "linked", "step_id": first}],
                     headers=auth(key)).status_code == 201
    rows = [(e["step_name"], e["run_step_id"], e["member_identifier"]) for e in Db(db_url).errors(run_id)]
    assert rows == [("(run)", None, None), ("sync", None, "1004"), ("download", first, None)]


def test_an_end_with_a_crash_leaves_a_crash_row_naming_the_step_and_ends_open_steps(http, key, db_url):
    """`crash` ends the run failure with a crash row (message with the step in progress, stack), the kind and
    the stats in summary_json, the exit code, and the steps still open ended failure."""
    run_id = _open(http, key)
    _step(http, key, run_id, "sync")
    response = http.post(f"/api/runs/{run_id}/end", headers=auth(key), json={
        "exit_code": 1, "stats": {"members": 3},
        "crash": {"kind": "unhandled_rejection", "message": "Error: ECONNREFUSED", "stack": "at main (sync.js:3)"}})
    assert response.status_code == 200 and response.json()["outcome"] == "failure"
    db = Db(db_url)
    run = db.run(run_id)
    assert run["outcome"] == "failure" and run["exit_code"] == 1 and run["ended_by"] == "owner"
    assert '"kind": "unhandled_rejection"' in run["summary_json"] and '"members": 3' in run["summary_json"]
    [crash] = db.crash_rows(run_id)
    assert crash["error_message"] == "Error: ECONNREFUSED; step in progress: sync"
    assert crash["error_stack"] == "at main (sync.js:3)"
    assert db.steps(run_id)[0]["outcome"] == "failure"


def test_a_heartbeat_sets_heartbeat_at_while_the_run_runs_and_is_refused_after_its_end(http, key, db_url):
    """POST heartbeat writes heartbeat_at; once the run has ended it answers 409 with the outcome."""
    run_id = _open(http, key)
    beat = http.post(f"/api/runs/{run_id}/heartbeat", headers=auth(key))
    assert beat.status_code == 200
    assert Db(db_url).run(run_id)["heartbeat_at"] == beat.json()["heartbeat_at"]
    http.post(f"/api/runs/{run_id}/end", json={"outcome": "success"}, headers=auth(key))
    late = http.post(f"/api/runs/{run_id}/heartbeat", headers=auth(key))
    assert late.status_code == 409 and late.json()["outcome"] == "success"


def test_a_run_ended_once_refuses_a_second_end_steps_and_errors(http, key):
    """After its end a run takes no other end (409, with who ended it), no new step and no error."""
    run_id = _open(http, key)
    assert http.post(f"/api/runs/{run_id}/end", json={"outcome": "success"}, headers=auth(key)).status_code == 200
    again = http.post(f"/api/runs/{run_id}/end", json={"outcome": "failure"}, headers=auth(key))
    assert again.status_code == 409 and again.json()["ended_by"] == "owner"
    assert http.post(f"/api/runs/{run_id}/steps", json={"name": "x"}, headers=auth(key)).status_code == 409
    assert http.post(f"/api/runs/{run_id}/errors", json={"message": "x"}, headers=auth(key)).status_code == 409


def test_a_step_ended_twice_is_refused_and_keeps_its_first_end(http, key, db_url):
    """The second PATCH of a step is 409; the counts of the first stay."""
    run_id = _open(http, key)
    step_id = _step(http, key, run_id)
    path = f"/api/runs/{run_id}/steps/{step_id}"
    assert http.patch(path, json={"outcome": "success", "created": 5}, headers=auth(key)).status_code == 200
    assert http.patch(path, json={"outcome": "failure", "created": 9}, headers=auth(key)).status_code == 409
    assert Db(db_url).steps(run_id)[0]["created_count"] == 5


# -- pings ---------------------------------------------------------------------------------------------------
def test_start_then_success_ping_records_one_run_with_the_body_as_output_tail(http, key, db_url):
    """start opens a ping run; success ends it success, its body kept as the output tail."""
    started = http.post("/api/ping/backup/start", headers=auth(key))
    assert started.status_code == 201 and started.json()["superseded"] == []
    ended = http.post("/api/ping/backup/success", content=b"backed up 12 files\n", headers=auth(key))
    assert ended.status_code == 200 and ended.json() == {"run_id": started.json()["run_id"], "pipeline": "backup",
                                                         "outcome": "success", "started": True}
    run = Db(db_url).run(started.json()["run_id"])
    assert run["outcome"] == "success" and _tail(db_url, run["id"]) == "backed up 12 files\n"
    assert run["started_by"] == "api:node"


def test_a_ping_exit_code_ends_the_run_failure_with_that_code_and_a_crash_row(http, key, db_url):
    """/3 ends the ping run failure with exit_code 3 and the crash row exec writes (`exited with code 3`)."""
    run_id = http.post("/api/ping/backup/start", headers=auth(key)).json()["run_id"]
    assert http.post("/api/ping/backup/3", headers=auth(key)).json()["outcome"] == "failure"
    run = Db(db_url).run(run_id)
    assert run["exit_code"] == 3 and run["outcome"] == "failure"
    assert [c["error_message"] for c in Db(db_url).crash_rows(run_id)] == ["exited with code 3"]
    assert http.post("/api/ping/backup/0", headers=auth(key)).json()["outcome"] == "success"


def test_fail_without_a_start_records_a_run_that_starts_and_ends_at_once(http, key, db_url):
    """An end ping with no start ping records a run of (nearly) no duration, failure, with the output tail."""
    response = http.post("/api/ping/backup/fail", content=b"disk full", headers=auth(key))
    assert response.status_code == 200 and response.json()["started"] is False
    run = Db(db_url).run(response.json()["run_id"])
    assert run["outcome"] == "failure" and _tail(db_url, run["id"]) == "disk full" and run["exit_code"] is None
    assert Db(db_url).crash_rows(run["id"])[0]["error_message"] == "the script pinged fail"


def test_a_second_start_ends_the_first_ping_run_superseded(http, key, db_url):
    """A start while this key's ping run of the pipeline still runs ends that one failure (kind superseded)."""
    first = http.post("/api/ping/backup/start", headers=auth(key)).json()["run_id"]
    second = http.post("/api/ping/backup/start", headers=auth(key)).json()
    assert second["superseded"] == [first]
    db = Db(db_url)
    assert db.run(first)["outcome"] == "failure" and '"kind": "superseded"' in db.run(first)["summary_json"]
    assert db.run(second["run_id"])["outcome"] == "running"


def test_an_end_ping_ends_only_ping_runs_of_its_own_key(http, key, app, db_url):
    """success ends this key's ping run, never a run opened with POST /api/runs nor another key's ping run."""
    other = write_key(app, "other")
    api_run = _open(http, key, "backup")
    others = http.post("/api/ping/backup/start", headers=auth(other)).json()["run_id"]
    mine = http.post("/api/ping/backup/success", headers=auth(key)).json()["run_id"]
    db = Db(db_url)
    assert mine not in (api_run, others)
    assert db.run(api_run)["outcome"] == db.run(others)["outcome"] == "running"


# -- refusals ------------------------------------------------------------------------------------------------
def test_no_key_or_an_unknown_key_is_401(http):
    """Without a key, or with one the database does not know, every write is 401 with a JSON error."""
    assert http.post("/api/runs", json={"pipeline": "nikki"}).status_code == 401
    response = http.post("/api/ping/nikki/start", headers={"X-API-Key": "rtk_unknown"})
    assert response.status_code == 401 and response.json()["field"] is None


def test_a_read_only_key_or_a_pipeline_out_of_its_scope_is_403(http, app):
    """A key without --write cannot write; a key for sync-* cannot write nikki (403 naming `pipeline`)."""
    read_only = write_key(app, "grafana", ())
    scoped = write_key(app, "sync", ("sync-*",))
    assert http.post("/api/runs", json={"pipeline": "nikki"}, headers=auth(read_only)).status_code == 403
    refused = http.post("/api/runs", json={"pipeline": "nikki"}, headers=auth(scoped))
    assert refused.status_code == 403 and refused.json()["field"] == "pipeline"
    assert http.post("/api/ping/nikki/start", headers=auth(scoped)).status_code == 403
    assert http.post("/api/runs", json={"pipeline": "sync-nikki"}, headers=auth(scoped)).status_code == 201


def test_a_run_opened_by_another_key_or_by_python_is_403(http, key, app, db_url):
    """Only the key that opened a run writes to it; a Python run is nobody's over HTTP."""
    run_id = _open(http, key)
    other = write_key(app, "other")
    assert http.post(f"/api/runs/{run_id}/end", json={"outcome": "success"}, headers=auth(other)).status_code == 403
    tracker = RunTracker("nikki", db=db_url)
    python_run = tracker.start_run()
    assert http.post(f"/api/runs/{python_run}/heartbeat", headers=auth(key)).status_code == 403
    tracker.end_run()


def test_an_unknown_run_or_a_step_of_another_run_is_404(http, key):
    """No such run: 404; a step id of another run: 404 on PATCH."""
    assert http.post("/api/runs/999999/steps", json={"name": "x"}, headers=auth(key)).status_code == 404
    first, second = _open(http, key), _open(http, key)
    step_id = _step(http, key, first)
    response = http.patch(f"/api/runs/{second}/steps/{step_id}", json={"outcome": "success"}, headers=auth(key))
    assert response.status_code == 404


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/runs", {}, "pipeline"),
    ("/api/runs", {"pipeline": ""}, "pipeline"),
    ("/api/runs", {"pipeline": 7}, "pipeline"),
    ("/api/runs", {"pipeline": "nikki", "pipline": "x"}, "pipline"),
    ("/api/runs", [1, 2], None),
    ("{run}/steps", {"name": None}, "name"),
    ("{run}/steps/{step}", {"outcome": "done"}, "outcome"),
    ("{run}/steps/{step}", {"outcome": "running"}, "outcome"),
    ("{run}/steps/{step}", {"outcome": "success", "created": "4"}, "created"),
    ("{run}/steps/{step}", {"outcome": "success", "failed": True}, "failed"),
    ("{run}/errors", {"member_identifier": "KNVB1"}, "message"),
    ("{run}/errors", [{"message": "ok"}, {"message": ["no"]}], "[1].message"),
    ("{run}/errors", [{"message": "ok"}, "text"], "[1]"),
    ("{run}/errors", {"message": "x", "step_id": 999999}, "step_id"),
    ("{run}/errors", {"message": "x", "memberIdentifier": "K"}, "memberIdentifier"),
    ("{run}/end", {}, "outcome"),
    ("{run}/end", {"outcome": "running"}, "outcome"),
    ("{run}/end", {"outcome": "success", "crash": {"message": "boom"}}, "outcome"),
    ("{run}/end", {"crash": {"stack": "at x"}}, "crash.message"),
    ("{run}/end", {"outcome": "failure", "exit_code": "1"}, "exit_code"),
    ("{run}/heartbeat", {"alive": True}, "alive"),
])
def test_a_bad_field_is_422_naming_it_and_writes_nothing(http, key, db_url, path, body, field):
    """Missing, unknown, empty or mistyped fields are 422 with {"error", "field"}; the run is unchanged."""
    run_id = _open(http, key)
    step_id = _step(http, key, run_id)
    url = path.format(run=f"/api/runs/{run_id}", step=step_id)
    method = http.patch if "{step}" in path else http.post
    response = method(url, json=body, headers=auth(key))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field and response.json()["error"]
    db = Db(db_url)
    assert len(db.runs()) == 1 and db.run(run_id)["outcome"] == "running"
    assert db.errors(run_id) == [] and db.steps(run_id)[0]["finished_at"] is None


def test_a_body_that_is_not_json_is_400(http, key):
    """Malformed JSON is 400, not a 500."""
    response = http.post("/api/runs", content=b"{pipeline: nikki", headers=auth(key))
    assert response.status_code == 400 and response.json() == {"error": "the body is not JSON", "field": None}


def test_an_exit_code_ping_out_of_range_is_422(http, key, db_url):
    """/256 is not an exit status: 422 naming exit_code, and no run."""
    response = http.post("/api/ping/backup/256", headers=auth(key))
    assert response.status_code == 422 and response.json()["field"] == "exit_code"
    assert Db(db_url).runs() == []


@pytest.mark.parametrize("body", [
    b'{"pipeline": "nikki", "club": NaN}',
    b'{"pipeline": "nikki", "detail": {"deep": [1, Infinity]}}',
    b'{"pipeline": "nikki", "x": -Infinity}',
    b'{"pipeline": "nikki", "x": 1e999}',
])
def test_nan_and_infinity_anywhere_in_a_body_are_400_and_open_no_run(http, key, db_url, body):
    """NaN, Infinity, -Infinity (and a number that overflows to it) are not JSON: 400 before any field is read."""
    response = http.post("/api/runs", content=body, headers=auth(key))
    assert response.status_code == 400 and response.json() == {"error": "the body is not JSON", "field": None}
    assert Db(db_url).runs() == []


@pytest.mark.parametrize("body", [b'{"outcome": "success", "created": NaN}',
                                  b'{"outcome": "success", "stats": {"rate": Infinity}}'])
def test_nan_in_counts_or_infinity_in_stats_is_400_and_leaves_the_run_running(http, key, db_url, body):
    """`{"created": NaN}` was stored as 0 and `{"stats": {"rate": Infinity}}` as "inf": both are refused."""
    run_id = _open(http, key)
    step_id = _step(http, key, run_id)
    path = f"/api/runs/{run_id}/steps/{step_id}" if b"created" in body else f"/api/runs/{run_id}/end"
    response = http.request("PATCH" if b"created" in body else "POST", path, content=body, headers=auth(key))
    assert response.status_code == 400, response.text
    db = Db(db_url)
    assert db.run(run_id)["outcome"] == "running" and db.steps(run_id)[0]["finished_at"] is None
