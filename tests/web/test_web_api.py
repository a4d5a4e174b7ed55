"""The JSON API, /health and /metrics (the Prometheus exposition parsed back by prometheus_client)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from webdata import add_run
from weblib import api_key

from runtracker.base.clock import iso, now_ms
from runtracker.storage import schema


@pytest.fixture
def key(app):
    return {"authorization": f"Bearer {api_key(app)}"}


@pytest.fixture
def runs(app):
    store = app.state.web.store
    ids = [add_run(store, "nikki", minute, outcome="failure" if minute % 3 == 0 else "success",
                   errors=[("sync", f"KNVB{minute % 2}", f"member KNVB{minute % 2} not found")])
           for minute in range(7)]
    return ids + [add_run(store, "laposta", 100, errors=[("sync", None, "HTTP 503")])]


def test_api_pipelines_gives_each_pipelines_card_as_json(app, anon, runs):
    """Name, status, latest run, success rate and whether it can be started (by this key: it may start any)."""
    key = {"authorization": f"Bearer {api_key(app, start=('*',))}"}
    found = {p["name"]: p for p in anon.get("/api/pipelines", headers=key).json()["pipelines"]}
    assert set(found) >= {"nikki", "laposta", "quiet", "sleeper"}
    assert found["nikki"]["latest_run"]["id"] == runs[6] and found["nikki"]["can_start"] is True
    assert found["quiet"]["status"] == "never ran" and found["quiet"]["can_start"] is False
    assert found["laposta"]["can_start"] is False


@pytest.mark.parametrize(("query", "count"), [("", 8), ("pipeline=nikki", 7), ("outcome=failure", 3),
                                              ("pipeline=nikki&outcome=success", 4), ("pipeline=nope", 0)])
def test_api_runs_filters(anon, key, runs, query, count):
    """/api/runs by pipeline and outcome, newest first."""
    found = anon.get(f"/api/runs?{query}", headers=key).json()["runs"]
    assert len(found) == count
    assert [r["started_at"] for r in found] == sorted((r["started_at"] for r in found), reverse=True)


def test_api_runs_pages_by_key(anon, key, runs):
    """`limit` and `before` page through every run once."""
    seen, before = [], ""
    while True:
        page = anon.get(f"/api/runs?limit=3{before}", headers=key).json()
        seen += [r["id"] for r in page["runs"]]
        if page["next_before"] is None:
            break
        before = f"&before={page['next_before']}"
    assert sorted(seen) == sorted(runs) and len(seen) == len(set(seen))


@pytest.mark.parametrize("query", ["outcome=great", "limit=0", "limit=100000", "before=abc", "before=999999"])
def test_api_bad_parameters_are_400(anon, key, query):
    """A parameter that cannot be used is a 400 with the reason."""
    response = anon.get(f"/api/runs?{query}", headers=key)
    assert response.status_code == 400 and response.json()["error"]


def test_api_run_has_its_steps_errors_and_crash(anon, key, runs):
    """/api/runs/<id>: the run, its steps, its errors; 404 for an unknown run."""
    body = anon.get(f"/api/runs/{runs[0]}", headers=key).json()
    assert body["run"]["id"] == runs[0] and body["errors"][0]["error_message"] == "member KNVB0 not found"
    assert anon.get("/api/runs/999999", headers=key).status_code == 404
    assert anon.get("/api/nothing", headers=key).status_code == 404


def test_api_errors_filters_and_pages(anon, key, runs):
    """/api/errors takes the browser's filters and pages with `after`."""
    body = anon.get("/api/errors?member=KNVB1&limit=2", headers=key).json()
    assert [e["member_identifier"] for e in body["errors"]] == ["KNVB1", "KNVB1"] and body["next_after"]
    rest = anon.get(f"/api/errors?member=KNVB1&limit=2&after={body['next_after']}", headers=key).json()
    assert len(rest["errors"]) == 1 and rest["next_after"] is None


def test_api_error_groups(anon, key, runs):
    """/api/errors/groups: the groups of the latest errors, with counts, members and runs."""
    body = anon.get("/api/errors/groups?pipeline=nikki", headers=key).json()
    assert body["window"] == 2000 and body["errors_grouped"] == 7
    (group,) = body["groups"]
    assert group["pattern"] == "member KNVB# not found" and group["count"] == 7
    assert sorted(group["members"]) == ["KNVB0", "KNVB1"] and len(group["runs"]) == 7


def test_health_needs_no_login_and_says_what_it_sees(anon, app, runs):
    """/health: database reachable, running runs, schema version."""
    add_run(app.state.web.store, "nikki", 500, outcome="running")
    body = anon.get("/health").json()
    assert body["status"] == "ok" and body["database"] == "reachable"
    assert body["running"] == 1 and body["schema_version"] == schema.LATEST


def test_health_answers_503_when_the_database_is_gone(anon, app):
    """A database that does not answer: 503 and `unreachable`, never a traceback."""

    def broken() -> None:
        raise OSError("gone")

    app.state.web.dash.health = broken
    response = anon.get("/health")
    assert response.status_code == 503 and response.json()["database"] == "unreachable"


def test_metrics_are_valid_prometheus_text_with_each_pipelines_numbers(anon, key, app):
    """Parsed by prometheus_client: last outcome, duration, last success, running, runs and crashes in 24 h."""
    store = app.state.web.store
    now = now_ms()
    with store.transaction() as cur:
        for i, outcome in enumerate(("success", "failure")):
            cur.execute(store.sql("INSERT INTO runs (pipeline, started_at, finished_at, duration_ms, outcome)"
                                  " VALUES (?, ?, ?, ?, ?)"),
                        ("nikki", iso(now - 3_600_000 + i * 60_000), iso(now - 3_590_000 + i * 60_000), 10_000,
                         outcome))
        cur.execute(store.sql("INSERT INTO run_errors (run_id, step_name, error_message, created_at)"
                              " VALUES (2, 'crash', 'killed by SIGKILL', ?)"), (iso(now - 3_000_000),))
        cur.execute(store.sql("INSERT INTO runs (pipeline, started_at, outcome) VALUES ('laposta', ?, 'running')"),
                    (iso(now - 60_000),))
    response = anon.get("/metrics", headers=key)
    assert response.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}
    assert samples[("runtracker_last_run_outcome", (("outcome", "failure"), ("pipeline", "nikki")))] == 1
    assert samples[("runtracker_last_run_outcome", (("outcome", "success"), ("pipeline", "nikki")))] == 0
    assert samples[("runtracker_last_run_duration_seconds", (("pipeline", "nikki"),))] == 10
    assert abs(samples[("runtracker_last_success_timestamp_seconds", (("pipeline", "nikki"),))]
               - (now - 3_590_000) / 1000) < 1
    assert samples[("runtracker_running", (("pipeline", "laposta"),))] == 1
    assert samples[("runtracker_running", (("pipeline", "nikki"),))] == 0
    assert samples[("runtracker_runs_24h", (("outcome", "success"), ("pipeline", "nikki")))] == 1
    assert samples[("runtracker_crashes_24h", (("pipeline", "nikki"),))] == 1
    assert samples[("runtracker_running_runs", ())] == 1
