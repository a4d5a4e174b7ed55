"""The alert history from a real monitor: a pipeline process fails, the in-process monitor raises the alert and
sends it to a real webhook receiver and to one that answers 500; the dashboard's /alerts, the pipeline's page and
/api/alerts show what arrived and why the other did not."""

from __future__ import annotations

import re

from alertlib import Receiver, deliveries_of
from starlette.testclient import TestClient

from helpers import Db, run_app, wait_until
from runtracker.settings.web import WebSettings
from runtracker.web.app import create_app

FAILING = """
from runtracker import RunTracker
tracker = RunTracker("nikki")
tracker.start_run()
tracker.record_error(step_name="sync", error_message="member not found")
tracker.end_run("failure")
"""


def _logged_in(app) -> TestClient:
    from runtracker.web import passwords

    app.state.web.auth.add_user("alice", passwords.hash_password("correct horse battery"))
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post("/login", data={"username": "alice", "password": "correct horse battery",
                                           "csrf_token": token, "next": "/"})
    assert response.status_code == 303
    return client


def _both_recorded(db_url: str) -> bool:
    found = {d["channel"]: d for d in deliveries_of(db_url)}
    return len(found) == 2 and found["hook"]["status"] == "sent" and found["broken"]["last_error"] is not None


def test_a_failed_run_s_alert_shows_delivered_to_one_channel_and_retrying_with_the_status_for_the_other(
        tmp_path, db_url, receiver, write_config, start_monitor):
    """hook (200) delivered; broken (500) retrying, its reason naming the status; the run linked; the pipeline's
    page shows it under its recent alerts."""
    broken = Receiver(status=500).start()
    try:
        config = write_config({"hook": receiver.url(), "broken": broken.url()})
        start_monitor(db_url, config)
        assert run_app(tmp_path, FAILING, db_url).returncode == 0
        run_id = Db(db_url).run()["id"]
        receiver.wait_for(1, "the failure's post")
        broken.wait_for(1, "the broken receiver's first post")
        wait_until(lambda: _both_recorded(db_url), "the delivery and the failed attempt recorded")
    finally:
        broken.stop()
    app = create_app(WebSettings(secret="s" * 32, db=db_url, config_path=str(config)))
    try:
        client = _logged_in(app)
        page = client.get("/alerts").text
        row = page[page.index('data-testid="alert-row"'):]
        assert f'href="/run/{run_id}" data-testid="alert-run">#{run_id}</a>' in row
        assert re.search(r'data-channel="hook" data-state="delivered"', row)
        assert re.search(r'data-channel="broken" data-state="retrying"', row)
        assert "Failed to send JSON POST notification: Internal server error., error=500" in row
        assert f"json://127.0.0.1:{broken.port}/***" in row
        section = client.get("/pipeline/nikki").text.split('id="recent-alerts"', 1)[1]
        assert f"nikki: run {run_id} failed" in section and 'data-state="retrying"' in section
        alert, = client.get("/api/alerts?state=retrying").json()["alerts"]
        assert (alert["event"], alert["run_id"], alert["kind"]) == ("failed", run_id, "failure")
        assert {d["channel"]: d["state"] for d in alert["deliveries"]} == {"hook": "delivered",
                                                                           "broken": "retrying"}
    finally:
        app.state.web.store.close()
