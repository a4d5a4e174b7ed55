"""What the monitor does besides reaping: finds the runs that ended, evaluates schedules and maximum runtimes, and
raises one alert per event (docs/alerts.md).

**Which runs.** A mark in the database (`alert_marks.runs`) says that every run below it has ended and been
looked at. The watcher keeps, in memory, the highest id it has read and the ids it saw `running`; each tick it
reads the runs above that id (a range of the primary key) and the `running` runs (idx_runs_running): a watched
id no longer running has ended. The mark is then the smallest id still watched. A restarted monitor starts
from the mark, so nothing that ended while it was away goes unseen, and the alerts' unique keys make the
runs it looks at again cost nothing but a failed insert. An id that is missing between ids read (on
PostgreSQL a transaction that took it may commit after a later one) is looked for again for a minute.

**Which events.** A run that ended `failure` is `crashed` (with its crash kind; a run the reaper ended is
`lost`) or `failed` (an exit status); `partial` when a pipeline asks for it; the first `success` after a
failure or an overdue alert is `recovered`. Whether a pipeline is `overdue` and which of its runs are `too_long`
is `runtracker.base.status.pipeline_status` (the rule the dashboard shows too); the watcher gathers the facts,
applies the config file's `alert_on`, and raises each event once (an overdue one again after the cooldown).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from ..base.clock import iso, now_ms, to_ms
from ..base.events import CRASHED, FAILED, OVERDUE, RECOVERED, TOO_LONG
from ..base.outcomes import RUNNING, SUCCESS
from ..base.status import PipelineFacts, PipelineStatus, pipeline_status
from ..core import liveness
from ..settings import configfile
from ..settings.pipelines import PipelineConfig
from ..storage import Runs, Store
from ..storage.alerts import AlertStore, NewAlert
from . import messages
from .channels import Channels
from .delivery import Deliverer

log = logging.getLogger("runtracker")

MARK = "runs"
BATCH = 1000  # runs read per statement
GAP_WAIT_MS = 60_000  # how long an id missing between ids read is looked for (a transaction committing late)


class Watcher:
    """Alerts for one database: `tick()` often (ended runs), `evaluate()` every pass (schedules, too long)."""

    def __init__(self, store: Store, config_path: str | None = None, *, clock: Callable[[], int] = now_ms,
                 config: PipelineConfig | None = None) -> None:
        """Reads the config file (ConfigError if it is wrong: nothing of it is used) and the mark."""
        self.alerts = AlertStore(store)
        self.clock = clock
        self.config_path = config_path
        self._stamp = self._config_stamp()
        self.config = config if config is not None else configfile.load(config_path)
        self.channels = Channels.make(self.config)
        self.by = f"{liveness.hostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.deliverer = Deliverer(self.alerts, self.channels, self.by, clock)
        self._high = 0  # the highest run id read
        self._watching: set[int] = set()  # ids seen running
        self._gaps: dict[int, int] = {}  # ids missing between ids read -> when first missed
        self._mark: int | None = None
        self._too_long: set[int] = set()  # runs alerted (or found alerted) as too long
        self._broken_stamp: object = None
        self.passes = 0  # evaluations done (tests wait for one after moving the clock)
        self._start()

    def _start(self) -> None:
        mark = self.alerts.mark(MARK)
        if mark is None:
            # The first monitor on this database: history is not news. Runs running now are watched.
            self._high = self.alerts.last_run_id()
            self._watching = {int(row["id"]) for row in Runs(self.alerts.store).running_runs()}
            self._save_mark()
        else:
            self._high = mark - 1

    def start(self) -> None:
        """Start the sending threads."""
        self.deliverer.start()

    def stop(self) -> bool:
        """Stop the sending threads; False if a send still hangs (see `Deliverer.stop`)."""
        return self.deliverer.stop()

    # -- every tick: the runs that ended --------------------------------------------------------------------
    def tick(self, running: Sequence[dict[str, Any]] | None = None) -> int:
        """Raise the alerts of runs that ended since the last tick; how many alerts were raised."""
        running_rows = Runs(self.alerts.store).running_runs() if running is None else running
        running_ids = {int(row["id"]) for row in running_rows}
        ended: list[dict[str, Any]] = []
        while True:
            rows = self.alerts.runs_after(self._high, BATCH)
            for row in rows:
                run_id = int(row["id"])
                for missing in range(self._high + 1, run_id):
                    self._gaps.setdefault(missing, self.clock())
                self._high = max(self._high, run_id)
                (ended if row["outcome"] != RUNNING else []).append(row)
                if row["outcome"] == RUNNING:
                    self._watching.add(run_id)
            if len(rows) < BATCH:
                break
        self._watching |= {i for i in running_ids if i <= self._high}
        # `running` was read before the runs above (the monitor reads it, then waits a tick): a watched run it
        # shows running may have ended before a run just read as ended. When there is such a run, every watched
        # run is read again, so that an earlier end is never judged after a later one (a failure, then its
        # recovery).
        look_at = self._watching if ended else self._watching - running_ids
        look = sorted(look_at | set(self._gaps))
        returned: set[int] = set()
        for row in self.alerts.runs_by_id(look) if look else []:
            run_id = int(row["id"])
            returned.add(run_id)
            self._gaps.pop(run_id, None)
            if row["outcome"] == RUNNING:
                self._watching.add(run_id)
            else:
                self._watching.discard(run_id)
                ended.append(row)
        self._watching -= set(look) - returned  # gone: deleted by retention (those that ended are discarded above)
        now = self.clock()
        self._gaps = {i: t for i, t in self._gaps.items() if now - t < GAP_WAIT_MS}
        raised = sum(self._run_ended(row) for row in sorted(ended, key=lambda r: int(r["id"])))
        self._save_mark()
        if raised:
            self.deliverer.wake()
        return raised

    def _save_mark(self) -> None:
        mark = min([*self._watching, *self._gaps, self._high + 1])
        if mark != self._mark:
            self.alerts.advance_mark(MARK, mark)
            self._mark = mark

    def _run_ended(self, run: dict[str, Any]) -> int:
        found = messages.run_event(run)
        if found is None:
            return 0
        event, kind = found
        pipeline = self.config.pipeline(str(run["pipeline"]))
        url = self.config.alerts.dashboard_url
        if event == SUCCESS:
            if RECOVERED not in pipeline.watch.events or not self._has_something_to_recover(pipeline.name):
                return 0
            return self._raise(messages.run_alert(RECOVERED, None, run, pipeline, [], url), recovered=True)
        if event not in pipeline.watch.events:
            return 0
        errors = self.alerts.first_errors(int(run["id"]), messages.ERRORS_SHOWN)
        alert = messages.run_alert(event, kind, run, pipeline, errors, url)
        return self._raise(alert, recover_from=FAILED if event in (FAILED, CRASHED) else None)

    def _has_something_to_recover(self, pipeline: str) -> bool:
        state = self.alerts.pipeline_states([pipeline], iso(self.clock())).get(pipeline)
        return bool(state and state.get("recover_from"))

    def _raise(self, alert: NewAlert, **state: Any) -> int:
        channels = self.channels.for_pipeline(alert.pipeline)
        alert_id = self.alerts.raise_alert(alert, channels, iso(self.clock()), self.by, **state)
        if alert_id is None:
            return 0
        log.warning("runtracker: alert %s: %s", alert.event_key, alert.title)
        return 1

    # -- every pass: schedules and runtimes -----------------------------------------------------------------
    def evaluate(self, running: Sequence[dict[str, Any]] | None = None) -> int:
        """Overdue pipelines and runs too long (after a tick, so that runs that ended count); alerts raised."""
        self.reload()
        running_rows = Runs(self.alerts.store).running_runs() if running is None else running
        raised = self.tick(running_rows)
        now = self.clock()
        # A scheduled pipeline whose overdue is alerted and that the monitors never watched is watched from now on:
        # if it never ran, it counts from then (adding a pipeline to the file does not alert at once).
        states = self.alerts.pipeline_states([p.name for p in self.config.pipelines.values()
                                              if p.watch.schedule is not None and OVERDUE in p.watch.events], iso(now))
        statuses = self.statuses(running_rows, states, now)
        url = self.config.alerts.dashboard_url
        for row in running_rows:
            pipeline = self.config.pipeline(str(row["pipeline"]))
            run_id = int(row["id"])
            if run_id in self._too_long or TOO_LONG not in pipeline.watch.events:
                continue
            if run_id in statuses[pipeline.name].too_long:
                self._too_long.add(run_id)
                raised += self._raise(messages.too_long_alert(pipeline, row, now, url))
        raised += self._overdue(states, statuses, now)
        if raised:
            self.deliverer.wake()
        self.passes += 1
        return raised

    def statuses(self, running: Sequence[dict[str, Any]], states: dict[str, dict[str, Any]],
                 now: int) -> dict[str, PipelineStatus]:
        """The status (runtracker.base.status) of each pipeline in `states` (the watched ones: their
        `alert_pipelines` rows) and of each one with a `running` run."""
        by_pipeline: dict[str, list[dict[str, Any]]] = {}
        for row in sorted(running, key=lambda r: (str(r.get("started_at") or ""), int(r["id"]))):
            by_pipeline.setdefault(str(row["pipeline"]), []).append(row)
        names = list(dict.fromkeys([*states, *by_pipeline]))
        latest = self.alerts.latest_starts(names)
        found = {}
        for name in names:
            facts = PipelineFacts(to_ms(latest.get(name)), by_pipeline.get(name, ()),
                                  to_ms((states.get(name) or {}).get("watched_since")))
            found[name] = pipeline_status(name, self.config.pipeline(name).watch, facts, now)
        return found

    def _overdue(self, states: dict[str, dict[str, Any]], statuses: dict[str, PipelineStatus], now: int) -> int:
        repeat_ms = int(self.config.alerts.overdue_repeat_s * 1000)
        raised = 0
        for name, state in states.items():
            status = statuses[name]
            if status.overdue_since_ms is None:
                continue
            since = iso(status.overdue_since_ms)
            alerted = to_ms(state.get("overdue_alerted_at"))
            if state.get("overdue_since") == since and alerted is not None and alerted > now - repeat_ms:
                continue  # within the cooldown: no write
            last_start = iso(status.last_started_ms) if status.last_started_ms is not None else None
            alert = messages.overdue_alert(self.config.pipeline(name), status.overdue_since_ms, last_start, now,
                                           self.config.alerts.dashboard_url)
            raised += self._raise(alert, overdue=(since, iso(now - repeat_ms)))
        return raised

    # -- the config file ------------------------------------------------------------------------------------
    def _config_stamp(self) -> object:
        path = configfile.config_path(self.config_path)
        try:
            return (path, os.stat(path).st_mtime_ns) if path else None
        except OSError:
            return (path, None)

    def reload(self) -> None:
        """Read the config file again if it changed. A broken file is logged once and not used: the config
        before it stays in force, whole."""
        stamp = self._config_stamp()
        if stamp == self._stamp or stamp == self._broken_stamp:
            return
        try:
            config = configfile.load(self.config_path)
            channels = Channels.make(config)
        except Exception as exc:
            self._broken_stamp = stamp
            log.error("runtracker: the pipeline config file changed but cannot be used, the one before stays in "
                      "force: %s", exc)
            return
        self._stamp, self.config, self.channels = stamp, config, channels
        self.deliverer.use(channels)
        log.warning("runtracker: the pipeline config file was read again")
