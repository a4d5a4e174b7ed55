"""A real Node.js pipeline (global fetch, no npm package) recording a run through the ingest API of a real
`runtracker serve`: steps, counts, errors, a heartbeat, and its crash — an unhandled rejection or an uncaught
exception — reported from `process.on(...)` before it exits 1."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import Db, open_fresh
from runtracker.storage.auth import Auth
from runtracker.web import passwords

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "browser"))

from browserlib import start_dashboard, stop_dashboard  # noqa: E402

pytestmark = [pytest.mark.subprocess,
              pytest.mark.skipif(shutil.which("node") is None, reason="these tests need Node.js (`node` on PATH)")]

# The README's pattern: a crash handler that ends the run `failure` with the crash, then exits 1.
SYNC_JS = r"""
const BASE = process.env.RUNTRACKER_URL;
const KEY = process.env.RUNTRACKER_KEY;

async function api(path, body, method = "POST") {
  const res = await fetch(BASE + path, {
    method,
    headers: {"Authorization": `Bearer ${KEY}`, "Content-Type": "application/json"},
    body: JSON.stringify(body ?? {}),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

let runId = null;
async function crashed(kind, err) {
  if (runId !== null) {
    try {
      await api(`/api/runs/${runId}/end`, {
        outcome: "failure", exit_code: 1,
        crash: {kind, message: `${err?.name ?? "Error"}: ${err?.message ?? err}`, stack: err?.stack ?? null},
      });
    } catch (e) {
      console.error("the crash could not be recorded:", e.message);
    }
  }
  process.exit(1);
}
process.on("unhandledRejection", (err) => crashed("unhandled_rejection", err));
process.on("uncaughtException", (err) => crashed("uncaught_exception", err));

async function main() {
  ({run_id: runId} = await api("/api/runs", {pipeline: "nikki-node"}));
  const beat = setInterval(() => api(`/api/runs/${runId}/heartbeat`).catch(() => {}), 10000);
  beat.unref();
  let {step_id} = await api(`/api/runs/${runId}/steps`, {name: "download"});
  await api(`/api/runs/${runId}/steps/${step_id}`, {outcome: "success", created: 40}, "PATCH");
  ({step_id} = await api(`/api/runs/${runId}/steps`, {name: "sync"}));
  await api(`/api/runs/${runId}/errors`, [
    {member_identifier: "KNVB1004", message: "member not found"},
    {member_identifier: "KNVB1013", message: "timeout"},
  ]);
  await api(`/api/runs/${runId}/heartbeat`);
  console.log(`run ${runId}`);
  if (process.env.CRASH === "throw") {
    setTimeout(() => { throw new TypeError("members is not iterable"); }, 0);
  } else {
    Promise.reject(new Error("connect ECONNREFUSED 10.0.0.5:443"));  // nobody awaits it
  }
}
main();
"""


@pytest.fixture
def served(db_url: str, tmp_path: Path):
    """A real `runtracker serve` on the test database, and an API key that may write every pipeline."""
    store = open_fresh(db_url)
    try:
        key = passwords.new_api_key()
        auth = Auth(store)
        auth.set_write_scope(auth.add_api_key("node", passwords.key_hash(key)), ["*"])
    finally:
        store.close()
    dashboard = start_dashboard(db_url, tmp_path / "serve.log")
    try:
        yield dashboard, key
    finally:
        stop_dashboard(dashboard)


@pytest.mark.parametrize(("crash", "kind", "message"), [
    ("reject", "unhandled_rejection", "Error: connect ECONNREFUSED 10.0.0.5:443; step in progress: sync"),
    ("throw", "uncaught_exception", "TypeError: members is not iterable; step in progress: sync"),
])
def test_a_node_pipeline_records_its_steps_errors_and_crash_through_the_api(served, db_url, tmp_path, crash, kind,
                                                                          message):
    """The Node script's run has its steps with counts, its errors, a heartbeat, and ends failure with a crash
    row (message naming the step in progress, the JS stack) recorded by its crash handler; it exits 1."""
    dashboard, key = served
    script = tmp_path / "sync.js"
    script.write_text(SYNC_JS)
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "RUNTRACKER_URL": dashboard.url, "RUNTRACKER_KEY": key,
           "CRASH": crash}
    done = subprocess.run(["node", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr, dashboard.output())
    run_id = int(done.stdout.split()[1])
    db = Db(db_url)
    run = db.run(run_id)
    assert (run["pipeline"], run["outcome"], run["exit_code"], run["started_by"]) == \
        ("nikki-node", "failure", 1, "api:node")
    assert run["heartbeat_at"] is not None and run["total_created"] == 40 and run["ended_by"] == "owner"
    assert f'"kind": "{kind}"' in run["summary_json"]
    steps = [(s["step_name"], s["outcome"], s["created_count"]) for s in db.steps(run_id)]
    assert steps == [("download", "success", 40), ("sync", "failure", 0)]
    errors = [(e["step_name"], e["member_identifier"], e["error_message"]) for e in db.errors(run_id)]
    assert errors[:2] == [("sync", "KNVB1004", "member not found"), ("sync", "KNVB1013", "timeout")]
    [crash_row] = db.crash_rows(run_id)
    assert crash_row["error_message"] == message and "sync.js" in crash_row["error_stack"]
