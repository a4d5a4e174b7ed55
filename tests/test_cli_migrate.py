"""`runtracker migrate --from A --to B`: SQLite to PostgreSQL and back, ids kept, merging, refusing."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import pg_schemas
from helpers import Db, open_fresh
from runtracker import RunTracker
from runtracker.base.clock import now_iso
from runtracker.cli import cli
from runtracker.storage import Runs
from runtracker.storage import copy as copy_module


@pytest.fixture
def pg_url():
    url = pg_schemas.new_schema_url("migrate")
    try:
        yield url
    finally:
        pg_schemas.drop_schema_url(url)


def migrate(*args: str):
    return CliRunner().invoke(cli, ["migrate", *args])


def history(url: str, pipeline: str = "nikki", n: int = 3) -> list[int]:
    """A few runs with steps, counts and errors, one failed with a crash row, one still running."""
    ids = []
    for i in range(n):
        t = RunTracker(pipeline, db=url, retention_days=0)
        ids.append(t.start_run())
        step = t.start_step("download")
        t.record_errors("download", step, [{"member_identifier": f"KNVB{i}", "message": "50% failed?"}, "x"])
        t.end_step(step, "partial", created=i, failed=1)
        t.record_error(step_name="sync", error_message="no step link")
        t.end_run("partial", {"i": i})
    with pytest.raises(ValueError):
        with RunTracker(pipeline, db=url, retention_days=0).run() as run:
            with run.step("sync"):
                raise ValueError("boom")
    ids.append(run.id)
    store = open_fresh(url)  # a run still going on another host, with a fresh heartbeat
    ids.append(Runs(store).insert_run(pipeline=pipeline, club_slug="rondo", started_at=now_iso(), hostname="elsewhere",
                                      pid=1, process_started_at=None, retention_cutoff=None))
    store.close()
    return ids


def snapshot(url: str, keep_ids: bool = True) -> list[tuple]:
    """Everything a dashboard shows of a database, with ids (or, for merges, without them)."""
    db = Db(url)
    out = []
    for run in db.runs():
        steps = db.steps(run["id"])
        position = {s["id"]: i for i, s in enumerate(steps)}
        errors = [{**e, "run_step_id": position.get(e["run_step_id"])} for e in db.errors(run["id"])]
        if not keep_ids:
            run = {k: v for k, v in run.items() if k != "id"}
            steps = [{k: v for k, v in s.items() if k not in ("id", "run_id")} for s in steps]
            errors = [{k: v for k, v in e.items() if k not in ("id", "run_id")} for e in errors]
        out.append((run, steps, errors))
    return out


def test_sqlite_to_postgresql_and_back_keeps_every_row_and_id(tmp_path, sqlite_url, pg_url):
    """SQLite -> PostgreSQL -> a new SQLite file: the same runs, steps and errors, with the same ids."""
    history(sqlite_url)
    result = migrate("--from", sqlite_url, "--to", pg_url)
    assert result.exit_code == 0, result.output
    assert "copied 5 runs, 4 steps and 11 errors" in result.output and "(ids kept)" in result.output
    assert "1 runs were still running" in result.output
    assert snapshot(pg_url) == snapshot(sqlite_url)
    back = f"sqlite:///{tmp_path / 'back.sqlite'}"
    assert migrate("--from", pg_url, "--to", back).exit_code == 0
    assert snapshot(back) == snapshot(sqlite_url)


@pytest.mark.parametrize("merge", [False, True])
def test_histories_larger_than_one_batch_are_copied_whole(tmp_path, sqlite_url, pg_url, monkeypatch, merge):
    """Rows are read in batches (here of 2): every row of every batch arrives, ids kept or remapped."""
    monkeypatch.setattr(copy_module, "BATCH", 2)
    history(sqlite_url, n=4)
    if merge:
        history(pg_url, "laposta", n=1)
    before = snapshot(pg_url, keep_ids=False)
    result = migrate("--from", sqlite_url, "--to", pg_url, *(["--merge"] if merge else []))
    assert result.exit_code == 0, result.output
    assert "copied 6 runs, 5 steps and 14 errors" in result.output
    assert snapshot(pg_url, keep_ids=False) == before + snapshot(sqlite_url, keep_ids=False)
    if not merge:
        assert snapshot(pg_url) == snapshot(sqlite_url)


def test_the_target_goes_on_with_new_ids_after_the_copied_ones(sqlite_url, pg_url):
    """After a copy that kept ids, the next run in the target gets an id after the copied ones."""
    ids = history(sqlite_url)
    assert migrate("--from", sqlite_url, "--to", pg_url).exit_code == 0
    db = Db(pg_url)
    step_ids = [s["id"] for run_id in ids for s in db.steps(run_id)]
    error_ids = [e["id"] for run_id in ids for e in db.errors(run_id)]
    t = RunTracker("nikki", db=pg_url, retention_days=0)
    assert t.start_run() > max(ids)
    step = t.start_step("s")
    t.record_error(step_name="s", step_id=step, error_message="e")
    t.end_run()
    assert step > max(step_ids) and db.errors(t.run_id)[0]["id"] > max(error_ids)


def test_a_target_with_runs_is_refused_without_merge(sqlite_url, pg_url):
    """Copying into a database that already has runs fails clearly and writes nothing."""
    history(sqlite_url, n=1)
    history(pg_url, n=1)
    before = snapshot(pg_url)
    result = migrate("--from", sqlite_url, "--to", pg_url)
    assert result.exit_code == 1 and "already holds 3 runs" in result.output and "--merge" in result.output
    assert snapshot(pg_url) == before


def test_merge_adds_runs_with_new_ids_and_is_safe_to_repeat(tmp_path, sqlite_url, pg_url):
    """--merge appends another database's history with steps and errors relinked; a second merge adds nothing."""
    history(pg_url, "laposta", n=2)
    history(sqlite_url, "nikki", n=2)
    before = snapshot(pg_url, keep_ids=False)
    result = migrate("--from", sqlite_url, "--to", pg_url, "--merge")
    assert result.exit_code == 0 and "copied 4 runs" in result.output and "(new ids)" in result.output
    merged = snapshot(pg_url, keep_ids=False)
    assert merged == before + snapshot(sqlite_url, keep_ids=False)
    again = migrate("--from", sqlite_url, "--to", pg_url, "--merge")
    assert "copied 0 runs" in again.output and "skipped 4 runs the target already had" in again.output
    assert snapshot(pg_url, keep_ids=False) == merged


def test_copy_is_all_or_nothing(sqlite_url, pg_url, monkeypatch):
    """A copy that fails half-way leaves the target as it was."""
    history(sqlite_url, n=2)
    open_fresh(pg_url).close()
    real = copy_module._copy_table

    def failing(target, cur, rows, report, kind, *args, **kwargs):
        if kind == "errors":
            raise RuntimeError("disk gone")
        return real(target, cur, rows, report, kind, *args, **kwargs)

    monkeypatch.setattr(copy_module, "_copy_table", failing)
    result = migrate("--from", sqlite_url, "--to", pg_url)
    assert result.exit_code == 1 and "nothing was written" in result.output
    assert Db(pg_url).runs() == []


def test_same_database_on_both_sides_is_refused(sqlite_url):
    """--from and --to naming the same database is an error."""
    result = migrate("--from", sqlite_url, "--to", sqlite_url[len("sqlite:///"):])
    assert result.exit_code == 1 and "same database" in result.output


def _login_and_key_work(url: str, user: str, password: str, key: str) -> tuple[int, int, bool]:
    """On the dashboard of `url`: the login's status (303: logged in), an API call's with the key, and whether the key
    may still write what it wrote."""
    from starlette.testclient import TestClient

    from runtracker.settings.web import WebSettings
    from runtracker.storage.auth import WRITE
    from runtracker.web import passwords
    from runtracker.web.app import create_app

    app = create_app(WebSettings(secret="s" * 32, db=url))
    try:
        client = TestClient(app, follow_redirects=False)
        token = client.get("/login").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        login = client.post("/login", data={"username": user, "password": password, "csrf_token": token, "next": "/"})
        api = TestClient(app).get("/api/runs", headers={"Authorization": f"Bearer {key}"})
        found = app.state.web.auth.api_key(passwords.key_hash(key))
        return login.status_code, api.status_code, found is not None and found.permissions.allows(WRITE, "nikki")
    finally:
        app.state.web.store.close()


def test_users_and_api_keys_come_along_so_logins_and_keys_still_work(tmp_path, sqlite_url, pg_url):
    """SQLite -> PostgreSQL -> SQLite: the user logs in with the same password and the key (write scope and all)
    answers on each target; the hashes are copied as they are. A wrong password is still refused."""
    from runtracker.storage.auth import WRITE, Auth
    from runtracker.web import passwords

    history(sqlite_url, n=1)
    store = open_fresh(sqlite_url)
    auth = Auth(store)
    assert auth.add_user("alice", passwords.hash_password("correct horse battery"))
    key = passwords.new_api_key()
    auth.set_scope(auth.add_api_key("ci", passwords.key_hash(key)), WRITE, ["nikki"])
    store.close()
    assert _login_and_key_work(sqlite_url, "alice", "correct horse battery", key) == (303, 200, True)

    result = migrate("--from", sqlite_url, "--to", pg_url)
    assert result.exit_code == 0, result.output
    assert "copied 1 user and 1 API key, their password and key hashes as they were" in result.output
    assert _login_and_key_work(pg_url, "alice", "correct horse battery", key) == (303, 200, True)
    assert _login_and_key_work(pg_url, "alice", "wrong", passwords.new_api_key()) == (401, 401, False)
    back = f"sqlite:///{tmp_path / 'back.sqlite'}"
    assert migrate("--from", pg_url, "--to", back).exit_code == 0
    assert _login_and_key_work(back, "alice", "correct horse battery", key) == (303, 200, True)


def test_a_merge_keeps_the_target_s_own_user_of_the_same_name(sqlite_url, pg_url):
    """--merge into a database where alice exists with another password: hers stays; bob and the key come along."""
    from runtracker.storage.auth import Auth
    from runtracker.web import passwords

    history(pg_url, "laposta", n=1)
    history(sqlite_url, n=1)
    source, target = open_fresh(sqlite_url), open_fresh(pg_url)
    Auth(source).add_user("alice", passwords.hash_password("the source's password"))
    Auth(source).add_user("bob", passwords.hash_password("bob's password here"))
    key = passwords.new_api_key()
    Auth(source).add_api_key("ci", passwords.key_hash(key))
    Auth(target).add_user("alice", passwords.hash_password("the target's password"))
    source.close()
    target.close()
    result = migrate("--from", sqlite_url, "--to", pg_url, "--merge")
    assert result.exit_code == 0, result.output
    assert "copied 1 user and 1 API key" in result.output and "kept 1 user and 0 API keys the target" in result.output
    assert _login_and_key_work(pg_url, "alice", "the target's password", key)[:2] == (303, 200)
    assert _login_and_key_work(pg_url, "alice", "the source's password", key)[0] == 401
    assert _login_and_key_work(pg_url, "bob", "bob's password here", key)[0] == 303
    again = migrate("--from", sqlite_url, "--to", pg_url, "--merge")
    assert "copied 0 users and 0 API keys" in again.output and "kept 2 users and 1 API key" in again.output
