"""The alert history (`storage.alerts.AlertHistory`), the same on every backend: alerts newest first with their
deliveries and each one's state, a keyset cursor, and the filters by pipeline, event and state."""

from __future__ import annotations

from helpers import open_fresh
from runtracker.storage.alerts import FAILED, PENDING, SENT, AlertHistory, AlertStore, NewAlert

T0 = "2026-12-07T03:00:00.000Z"
LATER = "2026-12-07T03:10:00.000Z"


def _raise(alerts: AlertStore, key: str, event: str, pipeline: str, run_id: int | None,
           channels: tuple[str, ...]) -> int:
    alert_id = alerts.raise_alert(NewAlert(key, event, pipeline, run_id, f"{pipeline}: {event}", "body"), channels,
                                  T0, "test:1:x")
    assert alert_id is not None
    return alert_id


def _try(alerts: AlertStore, alert_id: int, channel: str, status: str, error: str | None = None) -> None:
    """One attempt at a delivery, as a monitor makes it: claim, then record the outcome."""
    delivery, = [d for d in alerts.deliveries(alert_id) if d["channel"] == channel]
    assert alerts.claim(delivery, "test:1:x", LATER)
    assert alerts.finish_delivery(delivery["id"], "test:1:x", status, at=LATER, error=error,
                                  next_attempt_at=LATER if status == PENDING else None)


def _history(db_url):
    """Five alerts of two pipelines in every state: delivered, retrying, failed, sending, no channel."""
    store = open_fresh(db_url)
    alerts = AlertStore(store)
    ids = {
        "delivered": _raise(alerts, "failed:run:1", "failed", "nikki", 1, ("ops", "chat")),
        "retrying": _raise(alerts, "crashed:run:2", "crashed", "laposta", 2, ("ops",)),
        "failed": _raise(alerts, "failed:run:3", "failed", "nikki", 3, ("chat",)),
        "sending": _raise(alerts, "overdue:nikki:T", "overdue", "nikki", None, ("ops",)),
        "none": _raise(alerts, "recovered:run:5", "recovered", "nikki", 5, ()),
    }
    _try(alerts, ids["delivered"], "ops", SENT)
    _try(alerts, ids["delivered"], "chat", SENT)
    _try(alerts, ids["retrying"], "ops", PENDING, "A Connection error occurred; [Errno 111] Connection refused")
    _try(alerts, ids["failed"], "chat", FAILED, "error=500")
    return store, ids


def test_alerts_come_newest_first_with_their_deliveries_and_states(db_url):
    """Each alert with its deliveries (channel, state, reason) and its overall state; newest first."""
    store, ids = _history(db_url)
    rows = AlertHistory(store).page(10)
    assert [r["id"] for r in rows] == sorted(ids.values(), reverse=True)
    by_id = {r["id"]: r for r in rows}
    assert [(d["channel"], d["state"]) for d in by_id[ids["delivered"]]["deliveries"]] == [
        ("ops", "delivered"), ("chat", "delivered")]
    assert by_id[ids["delivered"]]["deliveries"][0]["sent_at"] == LATER
    retrying, = by_id[ids["retrying"]]["deliveries"]
    assert (retrying["state"], retrying["attempts"], retrying["next_attempt_at"]) == ("retrying", 1, LATER)
    assert "Connection refused" in retrying["last_error"]
    assert [by_id[ids[k]]["state"] for k in ("delivered", "retrying", "failed", "sending", "none")] == [
        "delivered", "retrying", "failed", "sending", "no channel"]
    assert by_id[ids["none"]]["deliveries"] == []
    r = by_id[ids["failed"]]
    assert (r["event"], r["pipeline"], r["run_id"], r["title"], r["created_at"]) == (
        "failed", "nikki", 3, "nikki: failed", T0)
    store.close()


def test_a_page_goes_on_below_its_cursor_to_the_end(db_url):
    """Pages of two, each below the last id of the one before: every alert once, then nothing."""
    store, ids = _history(db_url)
    history, seen, before = AlertHistory(store), [], None
    while True:
        rows = history.page(2, before=before)
        if not rows:
            break
        assert len(rows) <= 2
        seen += [r["id"] for r in rows]
        before = rows[-1]["id"]
    assert seen == sorted(ids.values(), reverse=True)
    store.close()


def test_filters_by_pipeline_event_and_delivery_state_combine(db_url):
    """pipeline, event and state each narrow the page; an alert matches a state if one of its deliveries is in it."""
    store, ids = _history(db_url)
    history = AlertHistory(store)

    def found(**filters):
        return [r["id"] for r in history.page(10, **filters)]

    assert found(pipeline="laposta") == [ids["retrying"]]
    assert found(pipeline="nikki") == [ids[k] for k in ("none", "sending", "failed", "delivered")]
    assert found(event="failed") == [ids["failed"], ids["delivered"]]
    for state, key in (("delivered", "delivered"), ("retrying", "retrying"), ("failed", "failed"),
                       ("sending", "sending"), ("no channel", "none")):
        assert found(state=state) == [ids[key]], state
    assert found(pipeline="nikki", state="retrying") == []
    assert found(pipeline="nikki", event="failed", state="failed") == [ids["failed"]]
    assert found(pipeline="nikki", before=ids["sending"]) == [ids["failed"], ids["delivered"]]
    assert found(pipeline="no-such-pipeline") == []
    store.close()
