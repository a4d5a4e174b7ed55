"""/metrics in the Prometheus text format, made by prometheus_client from what the database holds now.

Per pipeline: the last finished run's outcome, duration and end, the last success, whether a run is running
and for how long; runs by outcome and crash rows over the last 24 hours (a range of an index each: counting
the whole history at every scrape would read every run). Made at each scrape, nothing kept in the process:
several dashboard processes, or a restart, give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from ..base.clock import iso, now_ms, to_ms
from ..base.outcomes import FAILURE, PARTIAL, RUNNING, SUCCESS
from ..base.status import STATES, PipelineStatus
from ..storage.dashboard import Dashboard

WINDOW_MS = 24 * 3600 * 1000
FINISHED = (SUCCESS, PARTIAL, FAILURE)

# Each pipeline's status (runtracker.base.status) from (names, their latest runs, the running runs, now):
# `Web.statuses`.
StatusOf = Callable[[Sequence[str], Mapping[str, Sequence[dict[str, Any]]], Sequence[dict[str, Any]], int],
                    Mapping[str, PipelineStatus]]


def _seconds(moment: object) -> float | None:
    ms = to_ms(moment)
    return None if ms is None else ms / 1000


class _Collector:
    def __init__(self, dash: Dashboard, configured: Sequence[str], status_of: StatusOf) -> None:
        self.dash = dash
        self.configured = configured
        self.status_of = status_of

    def collect(self) -> Iterator[Metric]:
        now = now_ms()
        names = sorted(set(self.dash.pipeline_names()) | set(self.configured))
        latest = self.dash.latest_runs(names, 5)
        successes = self.dash.latest_runs(names, 1, outcome=SUCCESS)
        running_rows = self.dash.running_runs()
        statuses = self.status_of(names, latest, running_rows, now)
        since = iso(now - WINDOW_MS)

        outcome = GaugeMetricFamily("runtracker_last_run_outcome", "1 for the outcome of the pipeline's last "
                                    "finished run, 0 for the others", labels=["pipeline", "outcome"])
        duration = GaugeMetricFamily("runtracker_last_run_duration_seconds", "Duration of the pipeline's last "
                                     "finished run", labels=["pipeline"])
        finished = GaugeMetricFamily("runtracker_last_run_finished_timestamp_seconds", "When the pipeline's last "
                                     "finished run ended (Unix time)", labels=["pipeline"])
        success = GaugeMetricFamily("runtracker_last_success_timestamp_seconds", "When the pipeline's last "
                                    "successful run ended (Unix time)", labels=["pipeline"])
        is_running = GaugeMetricFamily("runtracker_running", "1 while a run of the pipeline is running",
                                       labels=["pipeline"])
        running_for = GaugeMetricFamily("runtracker_running_seconds", "How long the pipeline's running run has "
                                        "been running", labels=["pipeline"])
        for name in names:
            done = next((r for r in latest[name] if r["outcome"] != RUNNING), None)
            if done is not None:
                for value in FINISHED:
                    outcome.add_metric([name, value], 1.0 if done["outcome"] == value else 0.0)
                if done["duration_ms"] is not None:
                    duration.add_metric([name], done["duration_ms"] / 1000)
                if (at := _seconds(done["finished_at"])) is not None:
                    finished.add_metric([name], at)
            if successes[name] and (at := _seconds(successes[name][0]["finished_at"])) is not None:
                success.add_metric([name], at)
            run = statuses[name].oldest_running
            is_running.add_metric([name], 1.0 if run else 0.0)
            if run is not None and (started := to_ms(run["started_at"])) is not None:
                running_for.add_metric([name], max(0, now - started) / 1000)
        yield from (outcome, duration, finished, success, is_running, running_for)

        by_outcome = GaugeMetricFamily("runtracker_runs_24h", "Runs started in the last 24 hours, by outcome",
                                       labels=["pipeline", "outcome"])
        for row in self.dash.outcome_counts_since(since):
            by_outcome.add_metric([row["pipeline"], row["outcome"]], float(row["n"]))
        yield by_outcome
        crashes = GaugeMetricFamily("runtracker_crashes_24h", "Crash rows (a run that died: exception, signal, "
                                    "lost process, ...) recorded in the last 24 hours", labels=["pipeline"])
        counted: dict[str, Any] = {row["pipeline"]: row["n"] for row in self.dash.crashes_since(since)}
        for name in names:
            crashes.add_metric([name], float(counted.get(name, 0)))
        yield crashes
        total = GaugeMetricFamily("runtracker_running_runs", "Runs `running` now, all pipelines")
        total.add_metric([], float(len(running_rows)))
        yield total
        yield from _schedule_metrics([statuses[name] for name in names if statuses[name].watched])
        yield from _state_metrics([statuses[name] for name in names])


def _schedule_metrics(statuses: Sequence[PipelineStatus]) -> Iterator[Metric]:
    """Per pipeline with a schedule or a maximum runtime: overdue or not, since when, its next run, runs too long."""
    overdue = GaugeMetricFamily("runtracker_overdue", "1 while the pipeline has not started since a scheduled "
                                "time more than its grace ago", labels=["pipeline"])
    since = GaugeMetricFamily("runtracker_overdue_since_timestamp_seconds", "The scheduled time an overdue "
                              "pipeline missed (Unix time)", labels=["pipeline"])
    following = GaugeMetricFamily("runtracker_next_run_timestamp_seconds", "The pipeline's next scheduled time "
                                  "(Unix time)", labels=["pipeline"])
    too_long = GaugeMetricFamily("runtracker_runs_too_long", "The pipeline's runs still running past its "
                                 "max_runtime", labels=["pipeline"])
    for status in statuses:
        name = status.pipeline
        overdue.add_metric([name], 1.0 if status.overdue_since_ms is not None else 0.0)
        if status.overdue_since_ms is not None:
            since.add_metric([name], status.overdue_since_ms / 1000)
        if status.next_due_ms is not None:
            following.add_metric([name], status.next_due_ms / 1000)
        too_long.add_metric([name], float(len(status.too_long)))
    yield from (overdue, since, following, too_long)


def _state_metrics(statuses: Sequence[PipelineStatus]) -> Iterator[Metric]:
    """Each pipeline's state (the overview's badge: runtracker.base.status.STATES), and how many are in each."""
    state = GaugeMetricFamily("runtracker_pipeline_state", "1 for the pipeline's state (as the overview's badge), "
                              "0 for the others", labels=["pipeline", "state"])
    total = GaugeMetricFamily("runtracker_pipelines", "Pipelines in each state", labels=["state"])
    counted = dict.fromkeys(STATES, 0)
    for status in statuses:
        counted[status.state] += 1
        for value in STATES:
            state.add_metric([status.pipeline, value], 1.0 if status.state == value else 0.0)
    for value, n in counted.items():
        total.add_metric([value], float(n))
    yield from (state, total)


def exposition(dash: Dashboard, configured: Sequence[str], status_of: StatusOf) -> tuple[bytes, str]:
    """The metrics as Prometheus text, and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(dash, configured, status_of))  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST
