"""Everything shown came from outside: hostile pipeline names, messages, members, stacks and output tails,
stored through the public API, come back as text, never as markup. And the headers that back this up."""

from __future__ import annotations

import pytest
from webdata import tracked_run
from weblib import api_key

from runtracker import RunTracker
from runtracker.base.outcomes import FAILURE
from runtracker.core import lifecycle
from runtracker.core.ending import Ending

SCRIPT = "<script>alert(1)</script>"
PIPELINE = f'evil"><img src=x onerror=alert(2)>{SCRIPT}'
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def hostile(app, db_url):
    """A run of a hostile pipeline with hostile errors, and a crashed exec-like run with a hostile output tail."""
    run_id = tracked_run(db_url, PIPELINE, errors=[
        {"member_identifier": f"M{SCRIPT}", "error_message": f"message {SCRIPT}", "error_stack": f"stack {SCRIPT}"}])
    tracker = RunTracker(PIPELINE, db=db_url)
    crashed = tracker.start_run()
    tracker.close()
    lifecycle.end_run(app.state.web.store, crashed, Ending(
        FAILURE, kind="exit", message=f"exited {SCRIPT}", stack=f"Traceback {SCRIPT}",
        summary={"command": f"run {SCRIPT}", "exit_code": 1}, exit_code=1, output_tail=f"out {SCRIPT}\n"))
    return run_id, crashed


def pages(run_id: int, crashed: int) -> list[str]:
    from urllib.parse import quote

    name = quote(PIPELINE, safe="")
    member = quote(f"M{SCRIPT}", safe="")
    return ["/", f"/pipeline/{name}", f"/run/{run_id}", f"/run/{crashed}", "/errors", "/errors?view=groups",
            f"/errors/{run_id}", f"/member/{member}", f"/errors?pipeline={name}", f"/errors?q={quote(SCRIPT)}",
            "/errors/clear?q=" + quote(SCRIPT)]


def test_hostile_text_is_escaped_on_every_page(client, hostile):
    """No page contains the stored markup as markup; each shows it escaped."""
    for path in pages(*hostile):
        response = client.get(path)
        assert response.status_code == 200, path
        assert SCRIPT not in response.text and "<img src=x" not in response.text, path
        assert ESCAPED in response.text, path


def test_hostile_text_in_json_is_data(anon, app, hostile):
    """The API returns the stored text exactly, as JSON strings (application/json, never HTML)."""
    response = anon.get(f"/api/runs/{hostile[0]}", headers={"authorization": f"Bearer {api_key(app)}"})
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["run"]["pipeline"] == PIPELINE and body["errors"][0]["error_message"] == f"message {SCRIPT}"


def test_pages_carry_a_content_security_policy_and_no_sniffing(client):
    """No inline script may run even if markup slipped through; no framing; no content sniffing."""
    headers = client.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"


def test_the_templates_have_no_inline_script_or_style():
    """The CSP forbids inline script and style: the templates use none (the JS is a static file)."""
    from pathlib import Path

    import runtracker.web

    for template in (Path(runtracker.web.__file__).parent / "templates").glob("*.html"):
        text = template.read_text()
        assert "<script>" not in text and " style=" not in text and "onclick" not in text, template.name
