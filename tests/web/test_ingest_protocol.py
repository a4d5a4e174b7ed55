"""The ingest API's protocol, on SQLite and PostgreSQL: idempotency keys, the body limit, the per-key rate limit,
the OpenAPI description (every route in it, its examples valid and accepted), key scopes from the CLI, and how
the reaper judges an HTTP run that stops beating."""

from __future__ import annotations

import hashlib
import re
import threading
import time
import types

import pytest
from click.testing import CliRunner
from ingestlib import auth, openapi, problems, write_key
from starlette.testclient import TestClient
from weblib import SECRET

from helpers import Db, open_fresh
from runtracker.base import clock
from runtracker.cli import cli
from runtracker.core import lifecycle, reaper
from runtracker.settings.web import WebSettings
from runtracker.storage import Runs
from runtracker.storage.ingest import Ingest
from runtracker.web import core, ingest
from runtracker.web.app import create_app
from runtracker.web.ingest_http import MAX_BODY_BYTES


@pytest.fixture
def key(app) -> str:
    return write_key(app)


@pytest.fixture
def http(app) -> TestClient:
    return TestClient(app, follow_redirects=False)


def _open(http: TestClient, key: str) -> int:
    return int(http.post("/api/runs", json={"pipeline": "nikki"}, headers=auth(key)).json()["run_id"])


# -- idempotency ---------------------------------------------------------------------------------------------
def test_a_retry_with_the_same_idempotency_key_gets_the_same_answer_and_writes_once(http, key, db_url):
    """The second POST with the same Idempotency-Key and body returns the first response (Idempotent-Replayed)
    and records no second step or error."""
    run_id = _open(http, key)
    headers = auth(key, **{"Idempotency-Key": "step-1"})
    first = http.post(f"/api/runs/{run_id}/steps", json={"name": "sync"}, headers=headers)
    retry = http.post(f"/api/runs/{run_id}/steps", json={"name": "sync"}, headers=headers)
    assert first.status_code == retry.status_code == 201 and retry.json() == first.json()
    assert "idempotent-replayed" not in first.headers and retry.headers["idempotent-replayed"] == "true"
    errors = auth(key, **{"Idempotency-Key": "errors-1"})
    for _ in range(3):
        assert http.post(f"/api/runs/{run_id}/errors", json=[{"message": "a"}, {"message": "b"}],
                         headers=errors).status_code == 201
    db = Db(db_url)
    assert len(db.steps(run_id)) == 1 and len(db.errors(run_id)) == 2


def test_the_same_idempotency_key_with_another_body_or_path_is_422(http, key):
    """A key reused for another request is refused, naming the header."""
    run_id = _open(http, key)
    headers = auth(key, **{"Idempotency-Key": "k"})
    assert http.post(f"/api/runs/{run_id}/steps", json={"name": "a"}, headers=headers).status_code == 201
    other = http.post(f"/api/runs/{run_id}/steps", json={"name": "b"}, headers=headers)
    assert other.status_code == 422 and other.json()["field"] == "Idempotency-Key"
    assert http.post(f"/api/runs/{run_id}/heartbeat", headers=headers).status_code == 422


def test_a_refused_request_keeps_no_response_so_its_corrected_retry_is_handled(http, key, db_url):
    """A 422 writes nothing and is not stored: the fixed request with the same key is handled."""
    headers = auth(key, **{"Idempotency-Key": "open-1"})
    assert http.post("/api/runs", json={"pipline": "nikki"}, headers=headers).status_code == 422
    assert http.post("/api/runs", json={"pipeline": "nikki"}, headers=headers).status_code == 201
    assert len(Db(db_url).runs()) == 1


def test_idempotency_keys_are_per_api_key(http, key, app, db_url):
    """Two API keys using the same Idempotency-Key value record two runs."""
    other = write_key(app, "other")
    for k in (key, other):
        assert http.post("/api/runs", json={"pipeline": "nikki"},
                         headers=auth(k, **{"Idempotency-Key": "same"})).status_code == 201
    assert len(Db(db_url).runs()) == 2


def _fail_storing_responses(store, db_url: str) -> None:
    """A real database failure at the moment a response is stored: a trigger that refuses it."""
    with store.transaction() as cur:
        if db_url.startswith("sqlite"):
            cur.execute("CREATE TRIGGER refuse_responses BEFORE UPDATE ON api_idempotency"
                        " BEGIN SELECT RAISE(ABORT, 'the disk is gone'); END")
        else:
            cur.execute("CREATE FUNCTION refuse_responses() RETURNS trigger LANGUAGE plpgsql AS"
                        " $$ BEGIN RAISE EXCEPTION 'the disk is gone'; END $$")
            cur.execute("CREATE TRIGGER refuse_responses BEFORE UPDATE ON api_idempotency"
                        " FOR EACH ROW EXECUTE FUNCTION refuse_responses()")


def _store_responses_again(store, db_url: str) -> None:
    with store.transaction() as cur:
        cur.execute("DROP TRIGGER refuse_responses" + ("" if db_url.startswith("sqlite") else " ON api_idempotency"))


@pytest.mark.parametrize("what", ["open", "step", "errors", "end"])
def test_a_write_and_its_stored_response_commit_together_or_not_at_all(http, key, app, db_url, what):
    """When storing the response fails after the write (a real database error), the request is 500 and
    nothing of it is kept, its key neither: the retry with the same key records it, once."""
    store = app.state.web.store
    run_id = _open(http, key)
    step_id = http.post(f"/api/runs/{run_id}/steps", json={"name": "sync"}, headers=auth(key)).json()["step_id"]
    path, body = {"open": ("/api/runs", {"pipeline": "nikki"}),
                  "step": (f"/api/runs/{run_id}/steps", {"name": "load"}),
                  "errors": (f"/api/runs/{run_id}/errors", [{"message": "a"}, {"message": "b"}]),
                  "end": (f"/api/runs/{run_id}/end", {"outcome": "success"})}[what]
    headers = auth(key, **{"Idempotency-Key": f"{what}-1"})
    db = Db(db_url)

    def recorded():
        return (len(db.runs()), len(db.steps(run_id)), len(db.errors(run_id)), db.run(run_id)["outcome"],
                db.query("SELECT COUNT(*) AS n FROM api_idempotency")[0]["n"])

    before = recorded()
    _fail_storing_responses(store, db_url)
    failed = http.post(path, json=body, headers=headers)
    assert failed.status_code == 500 and "Idempotency-Key" in failed.json()["error"]
    assert recorded() == before
    _store_responses_again(store, db_url)
    first = http.post(path, json=body, headers=headers)
    retry = http.post(path, json=body, headers=headers)
    assert first.status_code in (200, 201) and retry.json() == first.json() and "idempotent-replayed" in retry.headers
    runs, steps, errors, outcome, keys = recorded()
    assert (runs, steps, errors, keys) == (before[0] + (what == "open"), before[1] + (what == "step"),
                                           before[2] + 2 * (what == "errors"), before[4] + 1)
    assert outcome == ("success" if what == "end" else "running") and step_id


@pytest.mark.parametrize("servers", ["one server", "two servers"])
def test_a_retry_while_the_first_request_is_handled_waits_for_it_and_gets_its_response(db_url, servers):
    """The claim is in the write's transaction: a second request with the same key (in the same server, or
    another server on the same database) waits until the first commits, then gets its response, writing
    nothing."""
    first_store = open_fresh(db_url)
    second_store = first_store if servers == "one server" else open_fresh(db_url)
    try:
        run_id = Runs(first_store).insert_run(pipeline="nikki", club_slug=None, started_at=clock.iso(clock.now_ms()),
                                              hostname=None, pid=None, process_started_at=None, retention_cutoff=None)
        assert run_id is not None
        inside, go_on = threading.Event(), threading.Event()
        answers: dict[str, object] = {}

        def handle_first():
            step_id, _ = lifecycle.add_step(first_store, run_id, "sync", None)
            inside.set()
            assert go_on.wait(10)
            return 201, {"step_id": step_id}

        def handle_second():
            answers["second handled"] = True
            return 201, {"step_id": -1}

        def call(store, handle, name):
            now = clock.now_ms()
            answers[name] = Ingest(store).once(handle, 1, "k", "h", clock.iso(now), clock.iso(now - 60_000))

        first = threading.Thread(target=call, args=(first_store, handle_first, "first"))
        first.start()
        assert inside.wait(10)
        second = threading.Thread(target=call, args=(second_store, handle_second, "second"))
        second.start()
        second.join(0.5)
        assert second.is_alive()  # waiting for the first's commit, not answered 409
        go_on.set()
        first.join(10)
        second.join(15)
        step_id = Runs(first_store).list_steps(run_id)[0]["id"]
        assert answers["first"] == ("claimed", {"status": 201, "body": {"step_id": step_id}})
        assert answers["second"] == ("done", {"status": 201, "body": {"step_id": step_id}})
        assert "second handled" not in answers and len(Runs(first_store).list_steps(run_id)) == 1
    finally:
        first_store.close()
        if second_store is not first_store:
            second_store.close()


def test_an_unfinished_claim_of_an_older_server_is_409_until_abandoned_then_taken_over(http, key, app):
    """A claim without a response (left by a server before this version, which committed its claim apart)
    makes a retry 409; one older than a minute (its server died) is taken over by the retry."""
    store = app.state.web.store
    run_id = _open(http, key)
    body = b'{"name": "sync"}'
    path = f"/api/runs/{run_id}/steps"
    key_id = int(store.read("SELECT id FROM api_keys")[0]["id"])
    digest = hashlib.sha256(f"POST {path}\n".encode() + body).hexdigest()
    now = clock.now_ms()
    with store.transaction() as cur:
        for name, at in (("busy", now), ("old", now - 120_000)):
            cur.execute(store.sql("INSERT INTO api_idempotency (key_id, idempotency_key, request_hash, created_at)"
                                  " VALUES (?, ?, ?, ?)"), (key_id, name, digest, clock.iso(at)))
    busy = http.post(path, content=body, headers=auth(key, **{"Idempotency-Key": "busy"}))
    assert busy.status_code == 409 and busy.json()["field"] == "Idempotency-Key"
    assert http.post(path, content=body, headers=auth(key, **{"Idempotency-Key": "old"})).status_code == 201


def test_idempotency_keys_older_than_a_day_are_pruned(app):
    """prune() forgets keys used before the cutoff and keeps newer ones."""
    store = app.state.web.store
    ingest_db = Ingest(store)
    now = clock.now_ms()
    for name, at in (("old", now - 25 * 3600_000), ("new", now)):
        ingest_db.once(lambda: (201, {"ok": True}), 1, name, "h", clock.iso(at), clock.iso(at - 60_000))
    assert ingest_db.prune(clock.iso(now - 24 * 3600_000)) == 1
    assert [r["idempotency_key"] for r in store.read("SELECT idempotency_key FROM api_idempotency")] == ["new"]


def test_a_verified_api_key_is_remembered_briefly_so_a_removed_key_stops_working_soon(http, key, app, monkeypatch):
    """A key is looked up once per API_KEY_MEMORY_S: removed, it still works within that time, then is 401."""
    # The memory's clock is the test's (not a sleep): on a loaded machine 0.3 s of real time could pass between
    # two requests and the "still works" half would fail.
    now = [time.monotonic()]
    monkeypatch.setattr(core, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    assert http.post("/api/runs", json={"pipeline": "nikki"}, headers=auth(key)).status_code == 201
    assert app.state.web.auth.remove_api_keys("node") == 1
    now[0] += core.API_KEY_MEMORY_S - 0.001
    assert http.post("/api/runs", json={"pipeline": "nikki"}, headers=auth(key)).status_code == 201
    now[0] += 0.002
    assert http.post("/api/runs", json={"pipeline": "nikki"}, headers=auth(key)).status_code == 401
    assert http.get("/api/pipelines", headers=auth(key)).status_code == 401


def test_a_malformed_idempotency_key_is_400(http, key):
    """An Idempotency-Key longer than 255 characters is refused, naming the header."""
    response = http.post("/api/runs", json={"pipeline": "nikki"}, headers=auth(key, **{"Idempotency-Key": "k" * 256}))
    assert response.status_code == 400 and response.json()["field"] == "Idempotency-Key"


# -- limits --------------------------------------------------------------------------------------------------
def test_a_body_over_the_limit_is_413_by_content_length_and_while_streaming(http, key, db_url):
    """256 KiB + 1 byte is refused: announced in Content-Length, or sent chunked with no length."""
    run_id = _open(http, key)
    big = b"[" + b'{"message": "x"},' * (MAX_BODY_BYTES // 17) + b'{"message": "x"}]'
    assert len(big) > MAX_BODY_BYTES
    response = http.post(f"/api/runs/{run_id}/errors", content=big, headers=auth(key))
    assert response.status_code == 413 and response.json()["field"] is None

    def chunks():
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    streamed = http.post(f"/api/runs/{run_id}/errors", content=chunks(), headers=auth(key))
    assert streamed.status_code == 413
    assert Db(db_url).errors(run_id) == []


def test_more_requests_than_the_keys_rate_are_429_with_retry_after(db_url, config_file):
    """With one request in 1000 s in bursts of 2, the third is 429 with Retry-After; another key is not slowed by
    it. (A rate so slow that no token comes back while a busy machine serves the three.)"""
    app = create_app(WebSettings(secret=SECRET, db=db_url, config_path=str(config_file), api_rate=0.001,
                                 api_burst=2))
    try:
        http = TestClient(app)
        key, other = write_key(app, "a"), write_key(app, "b")
        answers = [http.post("/api/ping/nikki/start", headers=auth(key)).status_code for _ in range(3)]
        assert answers == [201, 201, 429]
        limited = http.post("/api/ping/nikki/start", headers=auth(key))
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json()["retry_after_s"] > 0
        assert http.post("/api/ping/nikki/start", headers=auth(other)).status_code == 201
    finally:
        app.state.web.store.close()


# -- OpenAPI -------------------------------------------------------------------------------------------------
def _described(path: str) -> str:
    """A route's path as openapi.json writes it: `{run_id:int}` -> `{run_id}`, `{code:int}` -> `{exit_code}`."""
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: "{exit_code}" if m.group(1) == "code" else "{" + m.group(1) + "}",
                  path)


def test_every_ingest_route_is_described_in_openapi_json_and_served(http):
    """Each route of ingest.routes() (path and method) is in openapi.json, which /api/openapi.json serves."""
    doc = openapi()
    served = http.get("/api/openapi.json")
    assert served.status_code == 200 and served.json() == doc
    routes = {(_described(r.path), m.lower()) for r in ingest.routes() if r.path != "/api/openapi.json"
              for m in r.methods or () if m != "HEAD"}
    described = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert routes == described


def test_the_openapi_examples_validate_and_the_server_accepts_them(http, key):
    """Every request example is valid under its schema, and sent to the server it gets the documented 2xx answer,
    whose body is valid under the documented response schema."""
    doc = openapi()
    checked = 0
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            media = content.get("application/json")
            examples = [e["value"] for e in media["examples"].values()] if media else [None]
            success = next(code for code in operation["responses"] if code.startswith("2"))
            schema = operation["responses"][success]["content"]["application/json"]["schema"]
            for example in examples:
                if media:
                    assert problems(example, media["schema"], doc) == [], (path, example)
                run_id = _open(http, key)
                step_id = http.post(f"/api/runs/{run_id}/steps", json={"name": "nikki-sync"},
                                    headers=auth(key)).json()["step_id"]
                url = path.format(run_id=run_id, step_id=step_id, pipeline="nikki", exit_code=3)
                response = http.request(method.upper(), url, headers=auth(key),
                                        **({"json": example} if media else {}))
                assert response.status_code == int(success), (path, example, response.text)
                assert problems(response.json(), schema, doc) == [], (path, response.json())
                checked += 1
    assert checked >= 14


def test_the_documented_error_examples_are_valid_errors():
    """Each documented error response's example has the Error shape."""
    doc = openapi()
    for name, response in doc["components"]["responses"].items():
        example = response["content"]["application/json"]["example"]
        assert problems(example, {"$ref": "#/components/schemas/Error"}, doc) == [], name


# -- keys from the CLI -----------------------------------------------------------------------------------------
def test_key_add_with_write_makes_a_key_that_may_write_those_pipelines_only(db_url, app):
    """`user key-add NAME --write 'sync-*' --write nikki` prints a key that writes those and nothing else;
    `user list` shows the scope, and a key without --write is read-only."""
    runner = CliRunner()
    made = runner.invoke(cli, ["user", "key-add", "--db", db_url, "node", "--write", "sync-*", "--write", "nikki"])
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[0]
    http = TestClient(app)
    for pipeline, status in (("sync-a", 201), ("nikki", 201), ("laposta", 403)):
        assert http.post("/api/runs", json={"pipeline": pipeline}, headers=auth(secret)).status_code == status
    assert runner.invoke(cli, ["user", "key-add", "--db", db_url, "grafana"]).exit_code == 0
    listed = runner.invoke(cli, ["user", "list", "--db", db_url]).output
    assert "node  (writes sync-*, nikki;" in listed and "grafana  (read-only;" in listed


# -- the reaper ------------------------------------------------------------------------------------------------
def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The reaper judges as if `seconds` had passed (no sleeping)."""
    real = clock.now_ms
    monkeypatch.setattr(reaper, "now_ms", lambda: real() + int(seconds * 1000))


def test_an_http_run_that_stops_beating_is_reaped_by_heartbeat_age_and_its_owner_may_end_it_once(
        http, key, app, db_url, monkeypatch):
    """After a heartbeat the run is judged as another host's: alive within the timeout, reaped after it
    (heartbeat_timeout, a crash row); its key's end then overrides the verdict once."""
    store = app.state.web.store
    run_id = _open(http, key)
    http.post(f"/api/runs/{run_id}/steps", json={"name": "sync"}, headers=auth(key))
    assert http.post(f"/api/runs/{run_id}/heartbeat", headers=auth(key)).status_code == 200
    _later(monkeypatch, 30)
    assert reaper.reap(store, heartbeat_timeout=60) == []
    _later(monkeypatch, 90)
    [lost] = reaper.reap(store, heartbeat_timeout=60)
    assert (lost.run_id, lost.reason) == (run_id, "heartbeat_timeout")
    db = Db(db_url)
    assert db.run(run_id)["outcome"] == "failure" and db.run(run_id)["ended_by"] == "reaper"
    assert "step in progress: sync" in db.crash_rows(run_id)[0]["error_message"]
    late = http.post(f"/api/runs/{run_id}/end", json={"outcome": "success"}, headers=auth(key))
    assert late.status_code == 200 and late.json()["result"] == "overrode_reaper"
    assert db.run(run_id)["reap_reason"] == "heartbeat_timeout" and db.run(run_id)["outcome"] == "success"
    assert http.post(f"/api/runs/{run_id}/end", json={"outcome": "failure"}, headers=auth(key)).status_code == 409


def test_an_http_run_that_never_beats_is_judged_by_the_ownerless_timeout(http, key, app, db_url, monkeypatch):
    """Without a heartbeat the run has no owner the reaper can check: alive for hours, reaped past the ownerless
    timeout (6 h)."""
    monkeypatch.delenv("RUNTRACKER_OWNERLESS_TIMEOUT", raising=False)
    store = app.state.web.store
    run_id = _open(http, key)
    _later(monkeypatch, 3 * 3600)
    assert reaper.reap(store, heartbeat_timeout=60) == []
    _later(monkeypatch, 7 * 3600)
    assert [(r.run_id, r.reason) for r in reaper.reap(store, heartbeat_timeout=60)] == [(run_id, "ownerless_timeout")]
