"""`runtracker serve` reaps by default, `--no-reap` turns that off, and `--no-reap --monitor` is refused: real
servers as subprocesses, a dead owner's run on this host."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import Db, dead_pid, open_fresh, wait_until
from runtracker.base.clock import now_iso
from runtracker.cli import cli
from runtracker.core import liveness
from runtracker.storage import Runs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "browser"))

from browserlib import start_dashboard, stop_dashboard  # noqa: E402

pytestmark = [pytest.mark.subprocess]


def _dead_owner_run(db_url: str) -> int:
    """A `running` run on this host whose process has exited."""
    store = open_fresh(db_url)
    try:
        run_id = Runs(store).insert_run(pipeline="nikki", club_slug="rondo", started_at=now_iso(),
                                        hostname=liveness.hostname(), pid=dead_pid(), process_started_at=None,
                                        retention_cutoff=None)
        assert run_id is not None
        return run_id
    finally:
        store.close()


def test_serve_reaps_unless_no_reap(tmp_path: Path) -> None:
    """Two servers, each on a database with a dead owner's run: plain `serve` ends it (and said at start that it
    reaps); by then `serve --no-reap`, started first, has left its own running and said nothing of reaping."""
    quiet_db = f"sqlite:///{tmp_path / 'quiet.sqlite'}"
    reaping_db = f"sqlite:///{tmp_path / 'reaping.sqlite'}"
    quiet_run, reaping_run = _dead_owner_run(quiet_db), _dead_owner_run(reaping_db)
    quiet = start_dashboard(quiet_db, tmp_path / "quiet" / "serve.log", extra_args=["--no-reap"])
    try:
        reaping = start_dashboard(reaping_db, tmp_path / "reaping" / "serve.log")
        try:
            run = wait_until(lambda: (r := Db(reaping_db).run(reaping_run))["outcome"] != "running" and r,
                             "plain serve to reap the dead run")
            assert run["outcome"] == "failure" and run["reap_reason"] == "pid_gone"
            assert "reaping lost runs of" in reaping.output()
        finally:
            stop_dashboard(reaping)
        assert Db(quiet_db).run(quiet_run)["outcome"] == "running"
    finally:
        stop_dashboard(quiet)
    assert "reaping" not in quiet.output() and "reaped run" not in quiet.output()
    assert f"reaped run {reaping_run} (nikki)" in reaping.output()


def test_no_reap_with_monitor_is_refused(sqlite_url: str) -> None:
    """The monitor reaps: asking for it without reaping is a usage error, before anything is served."""
    result = CliRunner().invoke(cli, ["serve", "--db", sqlite_url, "--demo", "--monitor", "--no-reap"])
    assert result.exit_code == 2
    assert "--no-reap and --monitor exclude each other" in result.output
