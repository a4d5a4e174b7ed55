"""The alert history at the HTTP level: /alerts (login required, newest first, each channel's delivery with its
state and reason, URLs masked, filters, keyset pages), a pipeline's recent alerts on its history page, GET
/api/alerts with the same filters (an API key or a login), and hostile text shown as text.

The alerts are written as the monitor writes them (`AlertStore.raise_alert`, then a claim and the attempt's
outcome per delivery); tests/alerts/test_alert_history_flow.py has them raised and sent by a real monitor."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from webdata import tracked_run
from weblib import api_key

from runtracker.storage.alerts import FAILED, PENDING, SENT, AlertStore, NewAlert

T0 = "2026-12-07T03:00:00.000Z"
LATER = "2026-12-07T03:10:00.000Z"
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
CHANNELS = ('[alerts.channels]\nops = "mailtos://alerts:s3cret-pw@smtp.example.org?to=ops@example.org"\n'
            'chat = "json://hooks.example.org/T0KEN/secret-path"\n')


@pytest.fixture
def channels(config_file: Path) -> Path:
    """The config file with two channels, one URL with a password, one with a token in its path."""
    config_file.write_text(config_file.read_text() + CHANNELS)
    return config_file


def raise_alert(app, key: str, event: str, pipeline: str, run_id: int | None, channels: tuple[str, ...],
                title: str | None = None) -> int:
    alert_id = AlertStore(app.state.web.store).raise_alert(
        NewAlert(key, event, pipeline, run_id, title or f"{pipeline}: {event}", "body"), channels, T0, "test:1:x")
    assert alert_id is not None
    return alert_id


def attempt(app, alert_id: int, channel: str, status: str, error: str | None = None) -> None:
    """One attempt at a delivery as a monitor makes it: the claim, then its outcome."""
    alerts = AlertStore(app.state.web.store)
    delivery, = [d for d in alerts.deliveries(alert_id) if d["channel"] == channel]
    assert alerts.claim(delivery, "test:1:x", LATER)
    assert alerts.finish_delivery(delivery["id"], "test:1:x", status, at=LATER, error=error,
                                  next_attempt_at=LATER if status == PENDING else None)


@pytest.fixture
def history(app, channels):
    """Four alerts: nikki failed (delivered to both channels), laposta crashed (retrying: connection refused),
    nikki overdue (given up: HTTP 500), nikki recovered (no channel)."""
    ids = {
        "failed": raise_alert(app, "failed:run:41", "failed", "nikki", 41, ("ops", "chat")),
        "crashed": raise_alert(app, "crashed:run:42", "crashed", "laposta", 42, ("chat",)),
        "overdue": raise_alert(app, "overdue:nikki:T", "overdue", "nikki", None, ("chat",)),
        "recovered": raise_alert(app, "recovered:run:44", "recovered", "nikki", 44, ()),
    }
    attempt(app, ids["failed"], "ops", SENT)
    attempt(app, ids["failed"], "chat", SENT)
    attempt(app, ids["crashed"], "chat", PENDING, "A Connection error occurred; [Errno 111] Connection refused")
    attempt(app, ids["overdue"], "chat", FAILED, "Failed to send JSON POST notification: error=500")
    return ids


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-testid="alert-row" data-alert-id="(\d+)"', html)]


def test_the_alerts_page_and_api_need_a_login_or_a_key(anon, app):
    """Not logged in: /alerts sends to the login page and back; /api/alerts answers 401; with a key, 200."""
    response = anon.get("/alerts?state=failed")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Falerts%3Fstate%3Dfailed"
    assert anon.get("/api/alerts").status_code == 401
    answer = anon.get("/api/alerts", headers={"authorization": f"Bearer {api_key(app)}"})
    assert answer.status_code == 200 and answer.json() == {"alerts": [], "next_before": None}


def test_the_nav_links_to_the_alerts_page_which_says_when_there_are_none(client):
    """Every page's nav has Alerts; with no alert at all the page says so."""
    overview = client.get("/").text
    assert '<a href="/alerts" id="nav-alerts"' in overview
    page = client.get("/alerts")
    assert page.status_code == 200 and 'id="no-alerts">No alerts.' in page.text
    assert 'href="/alerts" id="nav-alerts" aria-current="page"' in page.text


def test_every_alert_is_listed_newest_first_with_each_channel_s_delivery_and_why_it_failed(client, history):
    """Event, pipeline, run link, channel with its URL masked, delivered / retrying / failed with the reason."""
    page = client.get("/alerts").text
    assert row_ids(page) == sorted(history.values(), reverse=True)
    assert 'href="/run/41" data-testid="alert-run">#41</a>' in page and 'href="/pipeline/laposta"' in page
    assert page.count('data-testid="delivery-state">delivered</span>') == 2
    assert 'data-testid="delivery-state">retrying</span>' in page and "[Errno 111] Connection refused" in page
    assert 'data-testid="delivery-state">failed</span>' in page and "given up after 1 try" in page
    assert "error=500" in page and "no channel: this pipeline" in page
    # The URLs as `runtracker config show` masks them: a password and a path (a webhook's token) never shown.
    assert "mailtos://alerts:***@smtp.example.org?to=ops@example.org" in page
    assert "json://hooks.example.org/***" in page
    assert "s3cret-pw" not in page and "T0KEN" not in page and "secret-path" not in page
    # The colour is the Apprise type each event goes out as.
    assert re.search(r'class="badge failure"[^>]*>failed<', page) and re.search(r'class="badge success"[^>]*>'
                                                                                  r'recovered<', page)


def test_the_filters_by_pipeline_event_and_state_narrow_the_page_and_the_api_alike(client, history):
    """Each filter, and two together; the API answers the same alerts with their deliveries."""
    cases = {"pipeline=laposta": ["crashed"], "pipeline=nikki": ["recovered", "overdue", "failed"],
             "event=overdue": ["overdue"], "state=delivered": ["failed"], "state=retrying": ["crashed"],
             "state=failed": ["overdue"], "state=no+channel": ["recovered"], "pipeline=nikki&state=retrying": [],
             "pipeline=nikki&event=failed&state=delivered": ["failed"]}
    for query, expected in cases.items():
        page = client.get(f"/alerts?{query}")
        assert page.status_code == 200, query
        assert row_ids(page.text) == [history[k] for k in expected], query
        api = client.get(f"/api/alerts?{query}").json()
        assert [a["id"] for a in api["alerts"]] == [history[k] for k in expected], query
    assert 'id="no-alerts">No alerts match these filters.' in client.get("/alerts?pipeline=nikki&state=retrying").text
    crashed, = client.get("/api/alerts?state=retrying").json()["alerts"]
    delivery, = crashed["deliveries"]
    assert (crashed["event"], crashed["pipeline"], crashed["run_id"], crashed["kind"]) == ("crashed", "laposta", 42,
                                                                                            "failure")
    assert (delivery["channel"], delivery["state"], delivery["attempts"], delivery["urls"]) == (
        "chat", "retrying", 1, ["json://hooks.example.org/***"])
    assert "Connection refused" in delivery["last_error"]


def test_a_filter_that_cannot_be_used_is_a_400_naming_the_values(client):
    """An unknown state or event, or a cursor that is not an id: 400 on the page and in the API."""
    for query, words in (("state=lost", "`state` is one of delivered, sending, retrying, failed, no channel"),
                         ("event=exploded", "`event` is one of failed, crashed"), ("before=x", "`before` must be")):
        page = client.get(f"/alerts?{query}")
        assert page.status_code == 400 and words in page.text, query
        api = client.get(f"/api/alerts?{query}")
        assert api.status_code == 400 and words in api.json()["error"], query


def test_pages_of_fifty_go_back_to_the_first_alert_keeping_the_filters(client, app, channels):
    """120 alerts of nikki and 5 of laposta: nikki's in pages of 50, 50, 20 by the `older` links (filter kept),
    every alert once; the API pages by `next_before` with its own limit."""
    nikki = [raise_alert(app, f"failed:run:{i}", "failed", "nikki", i, ("chat",)) for i in range(60)]
    laposta = [raise_alert(app, f"failed:run:{100 + i}", "failed", "laposta", 100 + i, ()) for i in range(5)]
    nikki += [raise_alert(app, f"failed:run:{200 + i}", "failed", "nikki", 200 + i, ("chat",)) for i in range(60)]
    seen, sizes, path = [], [], "/alerts?pipeline=nikki"
    while path:
        page = client.get(path.replace("&amp;", "&"))
        assert page.status_code == 200
        sizes.append(len(row_ids(page.text)))
        seen += row_ids(page.text)
        older = re.search(r'href="([^"]+)" rel="next" data-testid="older-page"', page.text)
        path = older.group(1) if older else None
        if path:
            assert "pipeline=nikki" in path
    assert sizes == [50, 50, 20] and seen == sorted(nikki, reverse=True)
    assert 'data-testid="newest-page"' in client.get(f"/alerts?pipeline=nikki&before={seen[49]}").text
    got, before = [], None
    while True:
        answer = client.get("/api/alerts", params={"limit": 7, **({"before": before} if before else {})}).json()
        got += [a["id"] for a in answer["alerts"]]
        before = answer["next_before"]
        if before is None:
            break
    assert got == sorted(nikki + laposta, reverse=True)


def test_a_pipeline_s_page_shows_its_latest_ten_alerts_and_links_to_all_of_them(client, app, channels):
    """12 alerts of nikki and one of laposta: nikki's page shows its 10 newest and a link to /alerts?pipeline=nikki."""
    tracked_run(app.state.web.settings.db, "nikki")
    tracked_run(app.state.web.settings.db, "laposta")
    nikki = [raise_alert(app, f"failed:run:{i}", "failed", "nikki", i, ("chat",)) for i in range(12)]
    raise_alert(app, "crashed:run:99", "crashed", "laposta", 99, ("chat",))
    attempt(app, nikki[-1], "chat", SENT)
    page = client.get("/pipeline/nikki").text
    section = page[page.index('id="recent-alerts"'):]
    assert row_ids(section) == sorted(nikki, reverse=True)[:10]
    assert 'href="/alerts?pipeline=nikki" id="all-alerts-link"' in section
    assert 'data-testid="delivery-state">delivered</span>' in section
    other = client.get("/pipeline/laposta").text
    assert len(row_ids(other)) == 1 and 'id="no-recent-alerts"' not in other
    tracked_run(app.state.web.settings.db, "quiet-one")
    assert 'id="no-recent-alerts">No alerts about this pipeline so far.' in client.get("/pipeline/quiet-one").text


def test_hostile_pipeline_names_messages_reasons_and_channel_urls_are_shown_as_text(client, app, config_file):
    """A pipeline named with markup, its title, a delivery's reason and a channel URL's query holding <script>:
    escaped on /alerts, on the pipeline's page, in the filter's options; data in the JSON."""
    pipeline = f'evil"><img src=x onerror=alert(2)>{SCRIPT}'
    config_file.write_text(config_file.read_text() + '[alerts.channels]\nhook = "json://hooks.example.org/h?to='
                           + quote(SCRIPT) + SCRIPT.replace('"', "") + '"\n')
    tracked_run(app.state.web.settings.db, pipeline)
    alert_id = raise_alert(app, "failed:run:1", "failed", pipeline, 1, ("hook",), title=f"{pipeline} failed")
    attempt(app, alert_id, "hook", PENDING, f"answered {SCRIPT}")
    for path in ("/alerts", f"/alerts?pipeline={quote(pipeline)}", f"/pipeline/{quote(pipeline, safe='')}"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert SCRIPT not in page.text and "<img src=x" not in page.text, path
        assert ESCAPED in page.text and row_ids(page.text) == [alert_id], path
    alert, = client.get("/api/alerts").json()["alerts"]
    assert alert["pipeline"] == pipeline and alert["deliveries"][0]["last_error"] == f"answered {SCRIPT}"
    assert SCRIPT in alert["deliveries"][0]["urls"][0]
