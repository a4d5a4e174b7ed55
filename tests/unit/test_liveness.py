"""How the reaper judges a `running` run's owner (runtracker.core.liveness.judge): another host by heartbeat age
alone; a run that records no owner at all (the original tool's) by its age against the ownerless timeout; this
host by its pid at once, with real pids (this process, and one that has exited), unless the run's process key
is from another boot or pid namespace."""

from __future__ import annotations

import os
from typing import Any

import psutil
import pytest

from helpers import dead_pid
from runtracker.base.clock import iso, to_ms
from runtracker.core import liveness
from runtracker.core.liveness import HEARTBEAT_TIMEOUT, OWNERLESS_TIMEOUT, PID_GONE, PID_REUSED

NOW_MS = to_ms("2026-11-26T12:00:00.000Z")
TIMEOUT_S = 60.0
HERE = "this-host"  # the observer's hostname; rows of this host carry it too
OTHER_BOOT = "linux:00000000-0000-0000-0000-000000000000:4026531836:12345"
HOST_KEY = liveness.host_key()
needs_proc = pytest.mark.skipif(HOST_KEY is None, reason="process keys need Linux /proc")


def ago(seconds: float) -> str:
    return iso(NOW_MS - round(seconds * 1000))


@pytest.fixture(scope="module")
def dead() -> int:
    return dead_pid()


def runs_row(facts: dict[str, Any], dead: int) -> dict[str, Any]:
    """A runs row as the reaper reads it: the facts given, NULL for the others.

    Symbolic facts are made real here: pid "own" (this process) or "dead" (exited and waited for); process_key
    "own" (this process's real key), "wrong-tick" (this host, this pid, another start), "this-host" (this boot
    and namespace, some start), "other-boot", "other-namespace"; started_off: this process's real start time
    plus so many seconds.
    """
    row: dict[str, Any] = {"id": 1, "pipeline": "nikki", "hostname": None, "pid": None, "process_started_at": None,
                           "process_key": None, "heartbeat_at": None, "started_at": ago(3 * 3600)}
    facts = dict(facts)
    offset = facts.pop("started_off", None)
    row.update(facts)
    row["pid"] = {"own": os.getpid(), "dead": dead}.get(row["pid"], row["pid"])
    if HOST_KEY is not None:
        boot = HOST_KEY.split(":")[1]
        keys = {"own": liveness.process_key(os.getpid()), "wrong-tick": f"{HOST_KEY}:1",
                "this-host": f"{HOST_KEY}:12345", "other-boot": OTHER_BOOT, "other-namespace": f"linux:{boot}:1:12345"}
        row["process_key"] = keys.get(row["process_key"], row["process_key"])
    if offset is not None:
        row["process_started_at"] = psutil.Process().create_time() + offset
    return row


def assert_verdict(verdict: liveness.Verdict | None, reason: str | None, detail: str | None) -> None:
    if reason is None:
        assert verdict is None
    else:
        assert verdict is not None and verdict.reason == reason, verdict
        assert detail is not None and detail in verdict.detail, verdict.detail


ANOTHER_HOST = [
    pytest.param({"hostname": "worker-2", "pid": 4242, "heartbeat_at": ago(10)}, None, None, id="fresh-heartbeat"),
    pytest.param({"hostname": "worker-2", "pid": 4242, "heartbeat_at": ago(61)}, HEARTBEAT_TIMEOUT,
                 "no heartbeat from pid 4242 on worker-2 for 61 s (timeout 60 s)", id="stale-heartbeat"),
    pytest.param({"hostname": "worker-2", "pid": 4242, "heartbeat_at": ago(60)}, None, None,
                 id="exactly-at-the-timeout-is-alive"),
    pytest.param({"hostname": "worker-2", "pid": 4242, "heartbeat_at": ago(60.001)}, HEARTBEAT_TIMEOUT,
                 "for 60 s (timeout 60 s)", id="a-millisecond-past-the-timeout"),
    pytest.param({"hostname": "worker-2", "pid": 4242, "heartbeat_at": ago(10), "started_at": ago(86400)}, None,
                 None, id="old-start-but-fresh-heartbeat"),
    pytest.param({"hostname": "worker-2", "pid": 4242, "started_at": ago(7200)}, HEARTBEAT_TIMEOUT,
                 "no heartbeat from pid 4242 on worker-2 for 7200 s", id="no-heartbeat-old-start"),
    pytest.param({"hostname": "worker-2", "pid": 4242, "started_at": ago(5)}, None, None,
                 id="no-heartbeat-recent-start"),
    pytest.param({"hostname": "worker-2", "pid": 4242, "heartbeat_at": "yesterday", "started_at": "soon"}, None,
                 None, id="unreadable-timestamps-are-never-a-verdict"),
    pytest.param({"hostname": "worker-2", "pid": 4242, "heartbeat_at": ago(-30)}, None, None,
                 id="heartbeat-from-a-clock-ahead-of-ours"),
    pytest.param({"hostname": "worker-2", "pid": "dead", "heartbeat_at": ago(1)}, None, None,
                 id="pid-dead-here-means-nothing"),
    pytest.param({"hostname": "worker-2", "pid": "own", "heartbeat_at": ago(120)}, HEARTBEAT_TIMEOUT,
                 "on worker-2 for 120 s", id="pid-alive-here-means-nothing"),
    pytest.param({"hostname": HERE, "started_at": ago(3600)}, HEARTBEAT_TIMEOUT,
                 "the owner (pid unknown) on this-host for 3600 s", id="this-hostname-but-no-pid"),
]


@pytest.mark.parametrize("facts, reason, detail", ANOTHER_HOST)
def test_another_hosts_run_is_lost_only_once_its_heartbeat_is_older_than_the_timeout(facts, reason, detail,
                                                                                    dead):
    """Another host's run, or one whose owner recorded no pid: only the heartbeat (else the start) tells, and
    only when strictly older than the timeout."""
    verdict = liveness.judge(runs_row(facts, dead), liveness.Observer(HERE, HOST_KEY, TIMEOUT_S, NOW_MS))
    assert_verdict(verdict, reason, detail)


THIS_HOST = [
    pytest.param({"pid": "own", "process_key": "own", "heartbeat_at": ago(3600)}, None, None,
                 id="own-pid-and-real-key-alive-whatever-the-heartbeat", marks=needs_proc),
    pytest.param({"pid": "own", "process_key": "own", "started_off": 0.0}, None, None,
                 id="own-pid-real-key-and-start-time", marks=needs_proc),
    pytest.param({"pid": "dead", "heartbeat_at": ago(0)}, PID_GONE, "pid {pid} on this-host no longer exists",
                 id="dead-pid-gone-at-once"),
    pytest.param({"pid": "dead", "process_key": "this-host", "heartbeat_at": ago(0)}, PID_GONE,
                 "pid {pid} on this-host no longer exists", id="dead-pid-with-a-key-of-this-host", marks=needs_proc),
    pytest.param({"pid": "dead", "heartbeat_at": ago(3600)}, PID_GONE, "no longer exists",
                 id="dead-pid-gone-not-timed-out"),
    pytest.param({"pid": "own", "process_key": "wrong-tick", "heartbeat_at": ago(0)}, PID_REUSED,
                 "pid {pid} on this-host now belongs to another process (the pid was reused)",
                 id="own-pid-with-another-start-tick", marks=needs_proc),
    pytest.param({"pid": "own", "process_key": "other-boot", "heartbeat_at": ago(120)}, HEARTBEAT_TIMEOUT,
                 "no heartbeat from pid {pid} on this-host for 120 s", id="key-from-another-boot-stale",
                 marks=needs_proc),
    pytest.param({"pid": "dead", "process_key": "other-boot", "heartbeat_at": ago(1)}, None, None,
                 id="key-from-another-boot-fresh", marks=needs_proc),
    pytest.param({"pid": "own", "process_key": "other-namespace", "heartbeat_at": ago(120)}, HEARTBEAT_TIMEOUT,
                 "for 120 s", id="key-from-another-pid-namespace-stale", marks=needs_proc),
    pytest.param({"pid": "dead", "process_key": "other-namespace", "heartbeat_at": ago(1)}, None, None,
                 id="key-from-another-pid-namespace-fresh", marks=needs_proc),
    pytest.param({"pid": "own", "started_off": -5.0, "heartbeat_at": ago(0)}, PID_REUSED,
                 "pid {pid} on this-host now belongs to another process", id="no-key-start-time-5-s-off"),
    pytest.param({"pid": "own", "started_off": 1.5, "heartbeat_at": ago(0)}, PID_REUSED,
                 "now belongs to another process", id="no-key-start-time-1.5-s-off"),
    pytest.param({"pid": "own", "started_off": -0.5, "heartbeat_at": ago(3600)}, None, None,
                 id="no-key-start-time-within-a-second"),
    pytest.param({"pid": "own", "heartbeat_at": ago(120)}, HEARTBEAT_TIMEOUT, "for 120 s",
                 id="no-key-no-start-time-falls-back-to-the-heartbeat"),
    pytest.param({"pid": "own", "heartbeat_at": ago(1)}, None, None, id="no-key-no-start-time-fresh"),
]


@pytest.mark.parametrize("facts, reason, detail", THIS_HOST)
def test_this_hosts_run_is_judged_by_its_pid_at_once(facts, reason, detail, dead):
    """A run of this host: a pid that is gone or now another process is lost at once; a live owner lives
    whatever its heartbeat; a key from another boot or pid namespace, or no way to tell, falls back to it."""
    row = runs_row({"hostname": HERE, **facts}, dead)
    verdict = liveness.judge(row, liveness.Observer(HERE, HOST_KEY, TIMEOUT_S, NOW_MS))
    assert_verdict(verdict, reason, detail and detail.format(pid=row["pid"]))


OWNERLESS = [
    pytest.param({"started_at": ago(3600)}, None, None, id="nodejs-tool-row-an-hour-into-its-work"),
    pytest.param({"started_at": ago(6 * 3600)}, None, None, id="exactly-at-the-ownerless-timeout-is-alive"),
    pytest.param({"started_at": ago(7 * 3600)}, OWNERLESS_TIMEOUT,
                 "records no owner (no host, pid or heartbeat, as the original tool writes its runs) and has been "
                 "running for 7.0 h, longer than the ownerless timeout of 6.0 h", id="nodejs-tool-row-7-hours-old"),
    pytest.param({"started_at": "2026-11-26 05:00:00"}, OWNERLESS_TIMEOUT, "running for 7.0 h",
                 id="nodejs-tool-row-with-sqlite-datetime-text"),
    pytest.param({"started_at": None}, None, None, id="nodejs-tool-row-without-any-time"),
    pytest.param({"started_at": "yesterday"}, None, None, id="nodejs-tool-row-with-an-unreadable-time"),
    pytest.param({"started_at": ago(3600), "pipeline": "backup"}, OWNERLESS_TIMEOUT,
                 "longer than the ownerless timeout of 30 min", id="a-pipelines-own-shorter-timeout"),
    pytest.param({"started_at": ago(7 * 3600), "pipeline": "archive"}, None, None,
                 id="a-pipelines-own-longer-timeout"),
]


@pytest.mark.parametrize("facts, reason, detail", OWNERLESS)
def test_a_run_that_records_no_owner_is_lost_only_once_older_than_the_ownerless_timeout(facts, reason, detail,
                                                                                        dead):
    """No host, pid or heartbeat (the original tool's runs): never judged by pid or heartbeat; lost only past
    the ownerless timeout (6 h here; 30 min for `backup`, 12 h for `archive`), whatever the heartbeat timeout."""
    observer = liveness.Observer(HERE, HOST_KEY, TIMEOUT_S, NOW_MS, 6 * 3600.0, {"backup": 1800.0, "archive": 43200.0})
    assert_verdict(liveness.judge(runs_row(facts, dead), observer), reason, detail)


@pytest.mark.parametrize("facts, age", [
    pytest.param({"heartbeat_at": ago(30), "started_at": ago(3600)}, 30.0, id="since-the-heartbeat"),
    pytest.param({"heartbeat_at": None, "started_at": ago(3600)}, 3600.0, id="no-heartbeat-since-the-start"),
    pytest.param({"heartbeat_at": "", "started_at": ago(3600)}, 3600.0, id="empty-heartbeat-since-the-start"),
    pytest.param({"started_at": ago(90)}, 90.0, id="row-without-a-heartbeat-column"),
    pytest.param({"heartbeat_at": "2026-11-26T12:59:30.000+01:00"}, 30.0, id="heartbeat-with-an-offset"),
    pytest.param({"heartbeat_at": ago(0.25)}, 0.25, id="fractions-of-a-second"),
    pytest.param({"heartbeat_at": ago(-5)}, -5.0, id="heartbeat-ahead-is-negative"),
    pytest.param({"heartbeat_at": None, "started_at": None}, None, id="neither"),
    pytest.param({"heartbeat_at": "yesterday", "started_at": "soon"}, None, id="neither-readable"),
    pytest.param({"heartbeat_at": "yesterday", "started_at": ago(3600)}, 3600.0,
                 id="unreadable-heartbeat-readable-start"),
])
def test_heartbeat_age_is_seconds_since_the_heartbeat_else_the_start(facts, age):
    """Seconds from the last heartbeat (or, without one, the start) to now; None when no time is readable."""
    assert liveness.heartbeat_age_s(facts, NOW_MS) == age
