"""Alert channels: the config file's `[alerts.channels]`, each one or more Apprise URLs, and sending through them.

Apprise knows about a hundred services by URL: `mailto://` / `mailtos://` (SMTP), `slack://`, `msteams://`,
`discord://`, `tgram://`, `ntfy://`, `json://` (a JSON webhook), and more. Every URL is checked when the channels
are made (`Channels.make`: an unknown or malformed one is an error naming the file and line), so a typo is found
when the monitor starts, not at the first failure at night.

Each send has a timeout: Apprise's own socket timeouts, which `SEND_TIMEOUT_S` sets on every URL that names none
(`cto`, `rto`); a send is never inside a database transaction, and never on the reaping path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from ..base import events
from ..core.state import STATE
from ..settings.configfile import ConfigError
from ..settings.pipelines import Channel, PipelineConfig

log = logging.getLogger("runtracker")

# Seconds Apprise waits to connect, and then for an answer, per URL (its defaults are 4 s; SMTP's 15 s).
SEND_TIMEOUT_S = 10.0
# Apprise spaces two messages to one URL by 5.5 s unless a service's plugin says otherwise: an alert that
# follows another within seconds would wait that long. One second still keeps a burst of alerts within the
# rate limits of chat services (Slack: one message a second); a plugin's own spacing is kept.
SPACING_S = 1.0
_APPRISE_DEFAULT_SPACING_S = 5.5
# The Apprise message type of each event, so that chat services show its colour and priority (Slack, Discord,
# Teams: red, amber, green; ntfy: priority). A run that failed or crashed, and a pipeline that did not run when it
# was due, mean data that was not synced: `failure`. A run still going past its maximum runtime, and a run that
# ended `partial`, may yet be fine: `warning`. A recovery is `success`; a test message (`alert test`) is `info`.
FAILURE, WARNING, SUCCESS, INFO = "failure", "warning", "success", "info"  # apprise.NotifyType's values
NOTIFY_TYPES = {
    events.FAILED: FAILURE,
    events.CRASHED: FAILURE,
    events.OVERDUE: FAILURE,
    events.TOO_LONG: WARNING,
    events.PARTIAL: WARNING,
    events.RECOVERED: SUCCESS,
}


def notify_type(event: str | None) -> str:
    """The Apprise type of an event's message: `info` for anything not in NOTIFY_TYPES (a test message)."""
    return NOTIFY_TYPES.get(event or "", INFO)


BAD_URL = "{where}: channel {name!r}: Apprise does not understand the URL {url} (see the Apprise wiki for the forms)"


class Channels:
    """The channels of a config, each an Apprise object ready to send."""

    def __init__(self, channels: dict[str, Any], config: PipelineConfig) -> None:
        self._apprise = channels
        self.config = config

    @classmethod
    def make(cls, config: PipelineConfig) -> Channels:
        """Check every URL and build the channels; ConfigError naming the file and line of a bad one."""
        import apprise

        # Apprise says why a send failed only in its log: the process's log capture keeps it (see `send`).
        STATE.log_capture.install("apprise")
        made: dict[str, Any] = {}
        for channel in config.alerts.channels.values():
            made[channel.name] = _apprise_of(apprise, channel)
        return cls(made, config)

    @property
    def names(self) -> list[str]:
        return list(self._apprise)

    def for_pipeline(self, pipeline: str) -> list[str]:
        """The names of the channels `pipeline`'s alerts go to."""
        return [c.name for c in self.config.channels_for(pipeline)]

    def send(self, channel: str, title: str, body: str, notify_type: str = INFO) -> str | None:
        """Send through one channel (each of its URLs) as an Apprise message of `notify_type` (`notify_type(event)`);
        None when it went, else why not."""
        target = self._apprise.get(channel)
        if target is None:
            return f"there is no channel {channel!r} in the config file any more"
        capture = STATE.log_capture
        capture.start()
        try:
            import apprise

            ok = target.notify(body=body, title=title, notify_type=notify_type,
                               body_format=apprise.NotifyFormat.TEXT)
        except Exception as exc:  # a plugin's bug is one failed send, never a dead sender
            return f"{type(exc).__name__}: {exc}"
        finally:
            lines = capture.stop()
        if ok:
            return None
        return why_not(lines)


# Apprise's debug lines that carry the exception behind a failed send: "Socket Exception: ...", "I/O Exception:
# ...". Other debug lines are left out (they quote the message and the URL).
_EXCEPTION_LINE = re.compile(r"^[\w/ ]{0,30}Exception[^:]{0,40}:\s*(.+)", re.S)
# The cause inside a requests or socket exception's text, innermost first: "[Errno 111] Connection refused",
# "Failed to resolve 'host' ([Errno -2] Name or service not known)", "Read timed out. (read timeout=10.0)".
_CAUSES = (
    re.compile(r"Failed to resolve '[^']*' \(\[Errno -?\d+\] [^)\"']+\)"),
    re.compile(r"\[Errno -?\d+\] [^)\"']+"),
    re.compile(r"(?:Read|Connect|Connection to [^ ]+) timed out\.?(?: \((?:read|connect) timeout=[\d.]+\))?"),
    re.compile(r"timed out"),
)
NOT_DELIVERED = "not delivered (Apprise said no more)"
REASON_LIMIT = 1000


def why_not(lines: Sequence[tuple[int, str]]) -> str:
    """Why a send failed, from what Apprise logged during it: its warnings ("Failed to send JSON POST
    notification: Internal server error., error=500."), then the cause its debug lines name ("[Errno 111]
    Connection refused", "Read timed out. (read timeout=10.0)"); each said once."""
    said = [text.strip().rstrip(".") for level, text in lines if level >= logging.WARNING and text.strip()]
    for level, text in lines:
        found = _EXCEPTION_LINE.match(text.strip()) if level < logging.WARNING else None
        if found:
            detail = found.group(1).strip()
            cause = next((m.group(0) for pattern in _CAUSES if (m := pattern.search(detail))), detail[:300])
            said.append(cause.strip().rstrip("."))
    return "; ".join(dict.fromkeys(said))[:REASON_LIMIT] or NOT_DELIVERED


def _apprise_of(apprise: Any, channel: Channel) -> Any:
    target = apprise.Apprise()
    for url in channel.urls:
        plugin = apprise.Apprise.instantiate(_with_timeouts(url))
        if plugin is None:
            shown = url.split("://", 1)[0] + "://..."  # the rest may hold a password
            raise ConfigError(BAD_URL.format(where=channel.where.rstrip(":"), name=channel.name, url=shown))
        if getattr(plugin, "request_rate_per_sec", 0) == _APPRISE_DEFAULT_SPACING_S:
            plugin.request_rate_per_sec = SPACING_S
        target.add(plugin)
    return target


def _with_timeouts(url: str) -> str:
    """`url` with our connect and read timeouts, unless it sets its own."""
    if "cto=" in url or "rto=" in url:
        return url
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}cto={SEND_TIMEOUT_S:g}&rto={SEND_TIMEOUT_S:g}"
