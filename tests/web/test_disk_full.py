"""The SQLite file's disk fills while the dashboard runs: pages still answer, with a banner, and nothing already
written is damaged. On a real small filesystem (a tmpfs of 2 MiB, mounted for the test: root only)."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ingestlib import auth, write_key
from starlette.testclient import TestClient
from weblib import PASSWORD, SECRET, USER, login

from runtracker import RunTracker
from runtracker.settings.web import WebSettings
from runtracker.storage.base import disk_full
from runtracker.storage.sqlite import SQLiteStore
from runtracker.web import passwords
from runtracker.web.app import create_app


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted at a directory of the test's own, unmounted afterwards."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root only): {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(directory: Path) -> None:
    """Write a file until the filesystem has no byte left."""
    with open(directory / "filler", "wb", buffering=0) as f:
        block = b"\0" * 65536
        while True:
            try:
                f.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if len(block) == 1:
                    return
                block = block[: len(block) // 2]


@pytest.mark.swallows
def test_a_full_disk_leaves_pages_answering_with_a_banner_and_the_database_whole(small_disk, swallowed):
    """With the database's disk full, pages answer 200 with a banner saying so and /health 503; writes fail as
    `disk_full`, every row written before is intact (PRAGMA integrity_check); freed space, writes go on."""
    db = str(small_disk / "dashboard.sqlite")
    tracker = RunTracker("nikki", db=db)
    with tracker.run():
        step = tracker.start_step("sync-members")
        tracker.record_error(step_id=step, member_identifier="KNVB1", error_message="member not found")
        tracker.end_step(step, "partial", 5, 0, 0, 1)
    tracker.close()
    app = create_app(WebSettings(secret=SECRET, db=f"sqlite:///{db}"))
    app.state.web.auth.add_user(USER, passwords.hash_password(PASSWORD))
    client = TestClient(app, follow_redirects=False)
    assert login(client, USER, PASSWORD).status_code == 303
    assert 'id="disk-full"' not in client.get("/").text
    fill(small_disk)

    writer = RunTracker("nikki", db=db)  # a pipeline goes on, its tracking failing (the guard swallows)
    with writer.run():
        for i in range(20):
            writer.record_error(member_identifier=f"KNVB{i}", error_message="x" * 500)
    writer.close()
    assert swallowed and all(disk_full(exc) for exc in swallowed)
    for path in ("/", "/pipeline/nikki", "/run/1", "/errors", "/errors/1", "/member/KNVB1"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[-500:])
        assert "The disk holding the database is full" in response.text, path
    health = client.get("/health")
    assert (health.status_code, health.json()["database"]) == (503, "disk full")
    check = SQLiteStore(db, create=False)
    assert check.read("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
    assert check.read("SELECT COUNT(*) AS n FROM run_errors WHERE member_identifier = 'KNVB1'")[0]["n"] == 1
    check.close()

    (small_disk / "filler").unlink()
    assert 'id="disk-full"' not in client.get("/").text
    assert client.get("/health").status_code == 200
    again = RunTracker("nikki", db=db)
    with again.run():
        pass
    again.close()
    assert client.get("/api/runs").json()["runs"][0]["outcome"] == "success"
    app.state.web.store.close()


@pytest.mark.swallows
def test_an_ingest_write_on_a_full_disk_is_503_with_retry_after_and_goes_through_once_space_is_freed(small_disk):
    """A write over the HTTP API with the disk full is refused 503 (not 500: retrying at once does not help) with
    Retry-After; the same request, retried with its idempotency key once space is freed, is recorded once."""
    db = str(small_disk / "dashboard.sqlite")
    app = create_app(WebSettings(secret=SECRET, db=f"sqlite:///{db}"))
    key = write_key(app)
    client = TestClient(app, follow_redirects=False)
    opened = client.post("/api/runs", json={"pipeline": "nikki"}, headers=auth(key))
    assert opened.status_code == 201, opened.text
    run_id = opened.json()["run_id"]
    fill(small_disk)
    errors = [{"message": f"member {i} not found " + "x" * 2000, "member_identifier": f"KNVB{i}"} for i in range(100)]
    headers = auth(key, **{"Idempotency-Key": "nikki-errors-1"})

    refused = client.post(f"/api/runs/{run_id}/errors", json=errors, headers=headers)
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) > 0
    assert "disk is full" in refused.json()["error"]

    (small_disk / "filler").unlink()
    again = client.post(f"/api/runs/{run_id}/errors", json=errors, headers=headers)
    assert again.status_code == 201, again.text
    check = SQLiteStore(db, create=False)
    assert check.read("SELECT COUNT(*) AS n FROM run_errors WHERE run_id = ?", (run_id,))[0]["n"] == 100
    check.close()
    app.state.web.store.close()
