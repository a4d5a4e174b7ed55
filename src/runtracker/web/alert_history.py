"""The alert history: `/alerts` (every alert raised, newest first, with each channel's delivery), a pipeline's
recent alerts on its history page, and `GET /api/alerts`. The rows come from `storage.alerts.AlertHistory`; here
they get what a page shows beside them: the event as words and a colour (its Apprise type), and each channel's
URLs masked as `runtracker config show` masks them (a channel the config file no longer names shows none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..alerts.channels import notify_type
from ..base.events import EVENTS
from ..settings.effective import masked_url
from ..settings.pipelines import PipelineConfig
from ..storage.alerts import DELIVERY_STATES, AlertHistory
from .core import BadRequest, Values, Web, int_param, page, text_param, url

ALERTS_PER_PAGE = 50
RECENT_ALERTS = 10  # on a pipeline's history page
FILTER_KEYS = ("pipeline", "event", "state")
EVENT_WORDS = {"too_long": "too long"}


class AlertFilter:
    """The history's filters from query parameters: pipeline, event (base/events.EVENTS), state (DELIVERY_STATES),
    and the cursor `before` (an alert id: the page holds older ones)."""

    __slots__ = ("pipeline", "event", "state", "before")

    def __init__(self, values: Values) -> None:
        self.pipeline = text_param(values, "pipeline")
        self.event = text_param(values, "event")
        self.state = text_param(values, "state")
        self.before = int_param(values, "before", 1)
        if self.event is not None and self.event not in EVENTS:
            raise BadRequest(f"`event` is one of {', '.join(EVENTS)}")
        if self.state is not None and self.state not in DELIVERY_STATES:
            raise BadRequest(f"`state` is one of {', '.join(DELIVERY_STATES)}")

    def params(self) -> dict[str, str]:
        """The filters given (not the cursor), for links that keep them."""
        return {k: v for k in FILTER_KEYS if (v := getattr(self, k))}

    def read(self, history: AlertHistory, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` alerts of this filter below its cursor, and whether there are older ones."""
        rows = history.page(limit + 1, before=self.before, pipeline=self.pipeline, state=self.state,
                            event=self.event)
        return rows[:limit], len(rows) > limit


def shown(alerts: Sequence[dict[str, Any]], config: PipelineConfig) -> list[dict[str, Any]]:
    """The rows as the pages and the API show them: new dicts (the rows read may be kept by `unchanged`), each with
    `event_text`, `kind` (failure, warning, success: the colour) and each delivery's `urls`, masked."""
    channels = config.alerts.channels
    found = []
    for alert in alerts:
        deliveries = []
        for delivery in alert["deliveries"]:
            channel = channels.get(delivery["channel"])
            deliveries.append({**delivery, "urls": [masked_url(u) for u in channel.urls] if channel else None})
        found.append({**alert, "deliveries": deliveries, "kind": notify_type(alert["event"]),
                      "event_text": EVENT_WORDS.get(alert["event"], alert["event"])})
    return found


def recent(web: Web, pipeline: str) -> list[dict[str, Any]]:
    """A pipeline's latest RECENT_ALERTS alerts, for its history page (kept while the database does not change)."""
    rows = web.dash.unchanged(("recent_alerts", pipeline),
                              lambda: AlertHistory(web.store).page(RECENT_ALERTS, pipeline=pipeline))
    return shown(rows, web.config())


def history_link(pipeline: str) -> str:
    return url("/alerts", pipeline=pipeline)


@page
def alerts_page(request: Request, web: Web, user: dict[str, Any]) -> Response:
    flt = AlertFilter(request.query_params)
    rows, older = flt.read(AlertHistory(web.store), ALERTS_PER_PAGE)
    params = flt.params()
    return web.render(request, "alerts.html", {
        "alerts": shown(rows, web.config()), "filter": flt, "params": params, "events": EVENTS,
        "states": DELIVERY_STATES, "pipelines": sorted(set(web.dash.pipeline_names()) | set(web.config().pipelines)),
        "older": url("/alerts", before=rows[-1]["id"], **params) if older and rows else None,
        "newest": url("/alerts", **params) if flt.before else None
    }, user=user)


def api_page(values: Values, web: Web, limit: int) -> dict[str, Any]:
    """GET /api/alerts's answer: the same filters and cursor as the page, `limit` alerts at most."""
    flt = AlertFilter(values)
    rows, older = flt.read(AlertHistory(web.store), limit)
    return {"alerts": shown(rows, web.config()), "next_before": rows[-1]["id"] if older and rows else None}
