"""`/account`: the logged-in user's own settings; today their time zone (settings/display.py), which wins over
their browser's and the dashboard's. `runtracker user timezone NAME ZONE` sets the same from the command line."""

from __future__ import annotations

import functools
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..base import zones
from ..settings import display
from .core import MAX_TEXT, Web, form_post, page


@functools.cache
def zone_names() -> tuple[str, ...]:
    """The zone names this machine knows, sorted (the form's suggestions)."""
    from zoneinfo import available_timezones

    return tuple(sorted(name for name in available_timezones() if zones.is_zone(name)))


@page
def account(request: Request, web: Web, user: dict[str, Any]) -> Response:
    browser = display.usable(request.cookies.get(display.BROWSER_COOKIE))
    configured = display.configured(web.config())
    return web.render(request, "account.html", {
        "zone_names": zone_names(), "browser_zone": browser, "configured_zone": configured.value,
    }, user=user)


@form_post
async def timezone_post(request: Request, web: Web, user: dict[str, Any], form: FormData) -> Response:
    """Set (or, empty, clear) the user's own zone; a name this machine does not know is refused (400)."""
    given = str(form.get("timezone") or "").strip()[: MAX_TEXT + 1]
    if given and display.usable(given) is None:
        return web.render(request, "message.html", {
            "title": "Bad request", "message": f"{given!r} is {zones.NOT_A_ZONE} ({zones.HINT})."}, 400, user)
    await run_in_threadpool(web.auth.set_timezone, str(user["name"]), given or None)
    web.sessions.flash(request, f"Times are now shown in {given}." if given else
                       "Times are now shown in your browser's zone, else the dashboard's.")
    return web.sessions.save(request, RedirectResponse("/account", status_code=303))
