"""What the monitor alerts about: the events a pipeline's `alert_on` names (docs/alerts.md).

Here, in the base layer, because two rooms need the one vocabulary: the config file checks `alert_on` against it
(`settings.configfile`), and the alerts decide and word their messages by it (`alerts/`).
"""

from __future__ import annotations

FAILED = "failed"
CRASHED = "crashed"
PARTIAL = "partial"
OVERDUE = "overdue"
TOO_LONG = "too_long"
RECOVERED = "recovered"
EVENTS = (FAILED, CRASHED, PARTIAL, OVERDUE, TOO_LONG, RECOVERED)
# A run's `partial` end is alerted about only when a pipeline asks for it.
DEFAULT_EVENTS = frozenset(EVENTS) - {PARTIAL}
