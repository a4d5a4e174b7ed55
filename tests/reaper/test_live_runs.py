"""A live run is never reaped: not while its owner sleeps, not while its main thread is stuck in a C call or a
blocked event loop for longer than the heartbeat timeout, not by a reaper on another host while heartbeats are
fresh. Owners are real subprocesses; the reaper runs in the test process (and through the CLI)."""

from __future__ import annotations

from click.testing import CliRunner

from helpers import Db, wait_until
from runtracker import RunTracker
from runtracker.cli import cli
from runtracker.core import reaper

# Each owner blocks for BLOCK_S; the reaper's timeout is well below that and ten times the owners' heartbeat
# interval (0.1 s), so a heartbeat that stopped while the owner is blocked would be noticed.
BLOCK_S = 2.5
TIMEOUT_S = 1.0

FINISH = """
tracker.end_step(step, "success", created=1)
tracker.end_run("success")
print("ended", flush=True)
"""

BLOCKING = {
    "sleeping": "time.sleep(BLOCK)\n",
    "main thread in a long C call": "import select\nselect.select([], [], [], BLOCK)\n",
    "blocked event loop": """
async def main():
    time.sleep(BLOCK)   # a synchronous call inside a coroutine: the loop cannot run anything else
    await asyncio.sleep(0)
asyncio.run(main())
""",
    "main thread in long SQLite queries": """
import sqlite3
end = time.monotonic() + BLOCK
conn = sqlite3.connect(":memory:")
while time.monotonic() < end:   # each query is one C call that releases the GIL
    conn.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000)"
                 " SELECT SUM(x) FROM c").fetchone()
""",
}


def test_blocked_owners_are_never_reaped(start_owner, store, db_url):
    """Owners blocked 2.5 s (sleep, C call, blocked event loop, SQLite) against a 1 s heartbeat timeout, on
    another host and on this one: the reaper, looking all the while, reaps none; each ends `success` itself."""
    owners = {}
    for host in ("worker-2", None):
        for how, code in BLOCKING.items():
            if host is None and how != "sleeping":
                continue  # on this host the pid answers, whatever the heartbeat does
            env = {"RUNTRACKER_HOSTNAME": host} if host else {}
            owner = start_owner(f"BLOCK = {BLOCK_S}\nprint('blocking', flush=True)\n" + code + FINISH, env=env,
                                name=f"app{len(owners)}.py")
            assert owner.proc.stdout.readline().strip() == "blocking"
            owners[f"{how} on {host or 'this host'}"] = owner
    found: list[reaper.Reaped] = []

    def all_ended_reaping_meanwhile() -> bool:
        if all(owner.proc.poll() is not None for owner in owners.values()):
            return True
        found.extend(reaper.reap(store, heartbeat_timeout=TIMEOUT_S))
        return False

    wait_until(all_ended_reaping_meanwhile, "every blocked owner to end (the reaper looking all the while)",
               interval=0.02)
    assert found == []
    db = Db(db_url)
    for what, owner in owners.items():
        status, out, err = owner.finish()
        assert status == 0 and "ended" in out, (what, err)
        run = db.run(owner.run_id)
        assert (what, run["outcome"], run["reaped_at"]) == (what, "success", None)
        assert db.crash_rows(owner.run_id) == []


def test_live_owner_survives_cli_reap_and_other_trackers_start_run(start_owner, db_url, tmp_path):
    """`runtracker reap` and a new tracker's start_run on the same database leave a live run alone."""
    owner = start_owner("while not os.path.exists('go'):\n    time.sleep(0.02)\n" + FINISH)
    result = CliRunner().invoke(cli, ["reap", "--db", db_url, "--heartbeat-timeout", "0.5"])
    assert result.exit_code == 0 and result.output.strip() == "nothing to reap"
    other = RunTracker("freescout", db=db_url, heartbeat_timeout_s=0.5)
    other.start_run()
    other.end_run("success")
    assert Db(db_url).run(owner.run_id)["outcome"] == "running"
    (tmp_path / "go").write_text("")
    assert owner.finish()[0] == 0
    assert Db(db_url).run(owner.run_id)["outcome"] == "success"

