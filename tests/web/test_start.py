"""The Start button and POST /api/pipeline/<name>/start: a real `runtracker exec --lock` in the background,
recorded with who started it, detached from the server; 409 while the pipeline runs, whoever started it."""

from __future__ import annotations

import os
import signal

import pytest
from webdata import add_run
from weblib import SLEEPER, api_key, csrf_token

from helpers import Db, wait_until


def _stop(run: dict) -> None:
    """End the started wrapper and its command (its own process group: start_new_session)."""
    try:
        os.killpg(int(run["pid"]), signal.SIGTERM)
    except ProcessLookupError:
        pass


@pytest.mark.subprocess
def test_api_start_runs_the_command_through_exec_and_a_second_start_is_409(app, anon, db_url):
    """202 with the run id; the run is `running`, started by `api:<key name>`, in a session of its own; a second
    start while it runs is 409 and records nothing."""
    headers = {"authorization": f"Bearer {api_key(app, 'cron', start=('sleeper',))}"}
    first = anon.post("/api/pipeline/sleeper/start", headers=headers)
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    assert run_id is not None
    run = wait_until(lambda: next((r for r in Db(db_url).runs() if r["id"] == run_id), None), "the started run")
    try:
        assert run["outcome"] == "running" and run["started_by"] == "api:cron" and run["pipeline"] == "sleeper"
        assert os.getsid(int(run["pid"])) == int(run["pid"])  # detached: a session (and group) of its own
        second = anon.post("/api/pipeline/sleeper/start", headers=headers)
        assert second.status_code == 409 and second.json()["run_id"] == run_id
        assert len(Db(db_url).runs()) == 1
    finally:
        _stop(run)
    ended = wait_until(lambda: Db(db_url).run(run_id)["outcome"] != "running", "the run to end")
    assert ended


@pytest.mark.subprocess
def test_the_start_button_records_the_dashboard_user(app, client, db_url):
    """The overview's Start form: the run is started by `dashboard:alice`; the card then has Start disabled."""
    response = client.post("/pipeline/sleeper/start", data={"csrf_token": csrf_token(client, "/"), "next": "/"})
    assert response.status_code == 303
    run = wait_until(lambda: next(iter(Db(db_url).runs()), None), "the started run")
    try:
        assert run["started_by"] == "dashboard:alice"
        assert "Started sleeper" in client.get("/").text
        again = client.post("/pipeline/sleeper/start", data={"csrf_token": csrf_token(client, "/")})
        assert again.status_code == 409 and "running already" in again.text
    finally:
        _stop(run)


def test_a_run_of_another_writer_makes_start_409(app, anon, db_url):
    """A `running` run of the pipeline that the dashboard did not start (a cron job, the original tool): 409."""
    running = add_run(app.state.web.store, "sleeper", 1, outcome="running")
    response = anon.post("/api/pipeline/sleeper/start", headers={"x-api-key": api_key(app, start=("*",))})
    assert response.status_code == 409 and response.json()["run_id"] == running


@pytest.mark.parametrize("name", ["quiet", "not-configured"])
def test_start_of_a_pipeline_without_a_command_is_404(app, anon, name):
    """Only a pipeline whose config gives a command can be started."""
    response = anon.post(f"/api/pipeline/{name}/start", headers={"x-api-key": api_key(app, start=("*",))})
    assert response.status_code == 404


def test_a_read_only_key_may_not_start_a_pipeline(app, anon, db_url):
    """A key made without --start is 403 on start, records nothing, and /api/pipelines says it cannot start."""
    headers = {"x-api-key": api_key(app)}
    response = anon.post("/api/pipeline/sleeper/start", headers=headers)
    assert response.status_code == 403 and "may not start 'sleeper'" in response.json()["error"]
    assert Db(db_url).runs() == []
    cards = {p["name"]: p for p in anon.get("/api/pipelines", headers=headers).json()["pipelines"]}
    assert cards["sleeper"]["can_start"] is False


@pytest.mark.subprocess
def test_a_key_may_start_only_the_pipelines_its_start_scope_matches(app, anon, db_url, config_file):
    """A key with `--start 'sync-*'`: nikki is 403 and nothing runs; sync-members starts (202, a real run);
    /api/pipelines says which it can start."""
    config_file.write_text(config_file.read_text() + '\n[pipelines.sync-members]\ncommand = '
                           + repr(SLEEPER).replace("'", '"') + "\n")
    headers = {"authorization": f"Bearer {api_key(app, 'sync', start=('sync-*',))}"}
    refused = anon.post("/api/pipeline/nikki/start", headers=headers)
    assert refused.status_code == 403 and "it may start sync-*" in refused.json()["error"]
    assert Db(db_url).runs() == []
    cards = {p["name"]: p for p in anon.get("/api/pipelines", headers=headers).json()["pipelines"]}
    assert (cards["nikki"]["can_start"], cards["sync-members"]["can_start"]) == (False, True)
    started = anon.post("/api/pipeline/sync-members/start", headers=headers)
    assert started.status_code == 202, started.text
    run = wait_until(lambda: next(iter(Db(db_url).runs()), None), "the started run")
    try:
        assert (run["pipeline"], run["started_by"]) == ("sync-members", "api:sync")
    finally:
        _stop(run)
    assert [r["pipeline"] for r in Db(db_url).runs()] == ["sync-members"]


def test_api_start_with_a_session_needs_the_csrf_header(client):
    """A browser's session alone cannot start a pipeline: the X-CSRF-Token header is required."""
    assert client.post("/api/pipeline/quiet/start").status_code == 403
    ok = client.post("/api/pipeline/quiet/start", headers={"x-csrf-token": csrf_token(client, "/")})
    assert ok.status_code == 404  # past the CSRF check: quiet has no command


def test_api_start_needs_a_key_or_session(anon):
    """No key, no session: 401."""
    assert anon.post("/api/pipeline/sleeper/start").status_code == 401
