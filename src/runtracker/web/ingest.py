"""The ingest API: runs of any language recorded over HTTP (docs/ingest.md; described in openapi.json).

A Node.js, Go or shell pipeline opens a run, adds steps, ends them with their counts, records errors, sends
heartbeats and ends the run; the simplest scripts only ping start / success / fail. Every write goes through the
same functions as the Python API (`opening.open_run`, `lifecycle.add_step`, `write_step_end`, `record_errors`,
`end_run`, `sanitize`), so the rows are the same, with the same limits, cleaning and owner-wins rules.

An HTTP run is owned by the API key that opened it (`runs.process_key` = `api-key:<id>`, `started_by` =
`api:<key name>`): only that key writes to it, and its end is the owner's (it replaces a reaper's verdict once).
It records no host or pid: the reaper judges it by its heartbeats, or, while it has sent none, by the ownerless
timeout (see `lifecycle.open_remote_run`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..base import sanitize
from ..base.clock import iso, now_ms, to_ms
from ..base.outcomes import DEFAULT_CLUB_SLUG, FAILURE, PARTIAL, RUNNING, STEP_OUTCOMES, SUCCESS
from ..base.tail import OutputTail
from ..core import lifecycle, opening
from ..core.ending import Ending
from ..settings.pipelines import DEFAULT_TAIL_BYTES
from ..storage import ALREADY_ENDED, REAPER, Runs
from ..storage.ingest import PING, owned_by, owner_of
from .ingest_http import READ_ONLY, Call, Problem, choice, count, endpoint, fields, integer, name, text

OPENAPI = Path(__file__).resolve().parent / "openapi.json"
END_OUTCOMES = (SUCCESS, PARTIAL, FAILURE)
RUN_FIELDS = ("pipeline", "club_slug")
STEP_FIELDS = ("name",)
STEP_END_FIELDS = ("outcome", "created", "updated", "skipped", "failed", "detail")
ERROR_FIELDS = ("message", "member_identifier", "stack", "step_id", "step_name")
END_FIELDS = ("outcome", "stats", "exit_code", "crash")
CRASH_FIELDS = ("message", "stack", "kind")
MAX_ID = 2**63 - 1

# Crash kinds of ping runs (summary_json's `kind`), and their crash rows' messages.
SUPERSEDED = "superseded"
SUPERSEDED_MESSAGE = "a new start ping of this pipeline came from the same API key before this run's end ping"
PING_EXIT = "exit"
PING_FAILED = "the script pinged fail"
PING_EXITED = "exited with code {code}"  # as `runtracker exec` says it


# -- runs ----------------------------------------------------------------------------------------------------
@endpoint
def open_run(call: Call) -> tuple[int, dict[str, Any]]:
    """POST /api/runs: a new `running` run of `pipeline`."""
    body = fields(call.json(), RUN_FIELDS)
    pipeline = name(body, "pipeline", required=True)
    assert pipeline is not None
    club = name(body, "club_slug")
    _may_write(call, pipeline)
    run_id = _open(call, pipeline, club, owner_of(call.key.key_id))
    return 201, {"run_id": run_id, "pipeline": pipeline}


@endpoint
def start_step(call: Call) -> tuple[int, dict[str, Any]]:
    """POST /api/runs/<id>/steps: a new step, started now."""
    run = _owned_run(call)
    body = fields(call.json(), STEP_FIELDS)
    step_name = name(body, "name", required=True)
    assert step_name is not None
    _still_running(run)
    step_id, started_ms = lifecycle.add_step(call.web.store, int(run["id"]), step_name, run["club_slug"])
    if step_id is None:
        raise _ended(run["id"], call)
    return 201, {"step_id": step_id, "run_id": run["id"], "started_at": iso(started_ms)}


@endpoint
def end_step(call: Call) -> tuple[int, dict[str, Any]]:
    """PATCH /api/runs/<id>/steps/<step_id>: the step's end, with its outcome and counts."""
    run = _owned_run(call)
    step = call.ingest.step(call.params["step_id"])
    if step is None or step["run_id"] != run["id"]:
        raise Problem(404, f"run {run['id']} has no step {call.params['step_id']}")
    body = fields(call.json(), STEP_END_FIELDS)
    outcome = choice(body, "outcome", STEP_OUTCOMES)
    assert outcome is not None
    created, updated, skipped, failed = (count(body, field) for field in ("created", "updated", "skipped", "failed"))
    detail_json = sanitize.to_json(body.get("detail"))
    started_ms = to_ms(step["started_at"]) or now_ms()
    if not lifecycle.write_step_end(call.web.store, int(run["id"]), int(step["id"]), started_ms, outcome, created,
                                    updated, skipped, failed, detail_json):
        raise Problem(409, f"step {step['id']} has ended already", None)
    return 200, {"step_id": step["id"], "run_id": run["id"], "outcome": outcome}


@endpoint
def record_errors(call: Call) -> tuple[int, dict[str, Any]]:
    """POST /api/runs/<id>/errors: one error (an object) or many (a list), in one transaction."""
    run = _owned_run(call)
    data = call.json()
    many = isinstance(data, list)
    items = data if many else [data]
    run_id = int(run["id"])
    steps: dict[int, str] = {}  # the steps the errors give by id, each checked to be the run's
    errors = []
    for i, item in enumerate(items):
        where = f"[{i}]" if many else ""
        if not isinstance(item, dict):
            raise Problem(422, "an error is a JSON object", where or None)
        error = fields(item, ERROR_FIELDS, where)
        message = text(error, "message", where, required=True)
        member = text(error, "member_identifier", where, numbers=True)
        stack = text(error, "stack", where)
        step_id = integer(error, "step_id", where, 1, MAX_ID)
        step_name = name(error, "step_name", where)
        if step_id is not None and step_id not in steps:
            step = call.ingest.step(step_id)
            if step is None or step["run_id"] != run_id:
                raise Problem(422, f"run {run_id} has no step {step_id}", f"{where}.step_id" if where else "step_id")
            steps[step_id] = str(step["step_name"])
        errors.append((step_name, step_id, member, message, stack))
    _still_running(run)
    # Under the step named, else the one given by id, else the step in progress, else the run: as record_error.
    recorded = lifecycle.record_errors(call.web.store, run_id, run["club_slug"], errors, steps,
                                       lambda: call.ingest.step_in_progress(run_id))
    return 201, {"run_id": run_id, "recorded": recorded}


@endpoint
def end_run(call: Call) -> tuple[int, dict[str, Any]]:
    """POST /api/runs/<id>/end: the owner's end of the run (steps still open are ended with it)."""
    run = _owned_run(call)
    body = fields(call.json(), END_FIELDS)
    crash = fields(body["crash"], CRASH_FIELDS, "crash") if body.get("crash") is not None else None
    outcome = choice(body, "outcome", END_OUTCOMES, required=crash is None) or FAILURE
    exit_code = integer(body, "exit_code")
    stats = body.get("stats")
    if crash is None:
        ending = Ending(outcome, summary_json=sanitize.to_json(stats), exit_code=exit_code)
    else:
        if outcome != FAILURE:
            raise Problem(422, "a run that ends with a crash ends `failure`", "outcome")
        summary: dict[str, Any] = dict(stats) if isinstance(stats, dict) else {}
        if stats is not None and not isinstance(stats, dict):
            summary["stats"] = stats
        if exit_code is not None:
            summary["exit_code"] = exit_code
        ending = Ending(FAILURE, summary=summary, kind=name(crash, "kind", "crash") or "uncaught_exception",
                                  message=text(crash, "message", "crash", required=True),
                                  stack=text(crash, "stack", "crash"), exit_code=exit_code, name_step=True)
    done = lifecycle.end_run(call.web.store, int(run["id"]), ending)
    if done.result == ALREADY_ENDED:
        raise _ended(run["id"], call)
    return 200, {"run_id": run["id"], "outcome": ending.outcome, "result": done.result,
                 "finished_at": done.finished_at}


@endpoint
def heartbeat(call: Call) -> tuple[int, dict[str, Any]]:
    """POST /api/runs/<id>/heartbeat: the client is alive; from now on the reaper judges the run by these."""
    run = _owned_run(call)
    fields(call.json(), ())
    at = iso(now_ms())
    if not Runs(call.web.store).touch_heartbeat([int(run["id"])], at):
        raise _ended(run["id"], call)
    return 200, {"run_id": run["id"], "heartbeat_at": at}


# -- pings ---------------------------------------------------------------------------------------------------
@endpoint
def ping_start(call: Call) -> tuple[int, dict[str, Any]]:
    """POST /api/ping/<pipeline>/start: a new ping run; an earlier one of this key still running ends `failure`."""
    pipeline = _ping_pipeline(call)
    superseded = call.ingest.ping_runs(pipeline, call.key.key_id)
    for run_id in superseded:
        lifecycle.end_run(call.web.store, run_id, Ending(FAILURE, kind=SUPERSEDED,
                                                                  message=SUPERSEDED_MESSAGE, name_step=True))
    run_id = _open(call, pipeline, None, owner_of(call.key.key_id) + PING)
    return 201, {"run_id": run_id, "pipeline": pipeline, "superseded": superseded}


@endpoint
def ping_success(call: Call) -> tuple[int, dict[str, Any]]:
    """POST /api/ping/<pipeline>/success."""
    return _ping_end(call, "success", None)


@endpoint
def ping_fail(call: Call) -> tuple[int, dict[str, Any]]:
    """POST /api/ping/<pipeline>/fail."""
    return _ping_end(call, "fail", None)


@endpoint
def ping_exit(call: Call) -> tuple[int, dict[str, Any]]:
    """POST /api/ping/<pipeline>/<exit code>: 0 is success, anything else failure with that exit code."""
    code = call.params["code"]
    if not 0 <= code <= 255:
        raise Problem(422, "an exit code is a whole number from 0 to 255", "exit_code")
    return _ping_end(call, "success" if code == 0 else "fail", code)


def _ping_end(call: Call, ping: str, code: int | None) -> tuple[int, dict[str, Any]]:
    """End the key's latest ping run of the pipeline; with no start ping before, a run that starts and ends
    now. The body, if any, is kept as the output tail, as `runtracker exec` keeps a command's."""
    pipeline = _ping_pipeline(call)
    output = None
    if call.raw:
        tail = OutputTail(DEFAULT_TAIL_BYTES)
        tail.add(call.raw)
        output = sanitize.text(tail.text(), DEFAULT_TAIL_BYTES)
    started = call.ingest.ping_runs(pipeline, call.key.key_id)
    run_id = started[0] if started else _open(call, pipeline, None, owner_of(call.key.key_id) + PING)
    summary: dict[str, Any] = {"ping": ping if code is None else str(code)}
    if ping == "success":
        ending = Ending(SUCCESS, summary=summary, exit_code=code, output_tail=output)
    else:
        message = PING_FAILED if code is None else PING_EXITED.format(code=code)
        ending = Ending(FAILURE, summary=summary, kind=PING_EXIT, message=message, exit_code=code,
                                  output_tail=output)
    done = lifecycle.end_run(call.web.store, run_id, ending)
    if done.result == ALREADY_ENDED:  # a concurrent end ping won
        raise _ended(run_id, call)
    return 200, {"run_id": run_id, "pipeline": pipeline, "outcome": ending.outcome, "started": bool(started)}


def _ping_pipeline(call: Call) -> str:
    pipeline = sanitize.name(call.params["pipeline"])
    _may_write(call, pipeline)
    return pipeline


# -- shared --------------------------------------------------------------------------------------------------
def _may_write(call: Call, pipeline: str) -> None:
    if not call.key.write:
        raise Problem(403, READ_ONLY)
    if not call.key.may_write(pipeline):
        raise Problem(403, f"this API key may not write runs of {pipeline!r} (it may write: "
                      f"{', '.join(call.key.write)})", "pipeline")


def _open(call: Call, pipeline: str, club: str | None, owner: str) -> int:
    """Open the run, with the retention of the server's settings; then reap lost runs, as start_run does (an
    HTTP-only setup needs no monitor to end its lost runs).

    The reaping comes once the request has committed, outside its transaction: it ends other runs and deletes
    the crash files whose last words it recorded, which a rollback of this request must not undo (and a new
    HTTP run, ownerless until its first heartbeat, is never reaped by it)."""
    store = call.web.store
    call.after.append(lambda: opening.reap_lost(store, door="at an ingest open"))
    run_id = opening.open_run(
        pipeline=pipeline, club_slug=DEFAULT_CLUB_SLUG if club is None else club, started_ms=now_ms(), store=store,
        install_hooks=False, reap_first=False, owner=owner, started_by=f"api:{call.key.name}")
    assert isinstance(run_id, int)  # an API key's run: its id
    return run_id


def _owned_run(call: Call) -> dict[str, Any]:
    """The run of the path, if this key opened it and may still write its pipeline."""
    if not call.key.write:
        raise Problem(403, READ_ONLY)
    run_id = call.params["run_id"]
    run = call.ingest.run(run_id)
    if run is None:
        raise Problem(404, f"there is no run {run_id}")
    if not owned_by(run["process_key"], call.key.key_id):
        raise Problem(403, f"run {run_id} was not opened by this API key")
    _may_write(call, str(run["pipeline"]))
    return run


def _still_running(run: dict[str, Any]) -> None:
    """A run takes steps and errors while `running`, and after a reaper's end (its owner was alive after all)."""
    if run["outcome"] != RUNNING and run["ended_by"] != REAPER:
        raise Problem(409, f"run {run['id']} has ended ({run['outcome']})", outcome=run["outcome"])


def _ended(run_id: object, call: Call) -> Problem:
    row = call.ingest.run(int(run_id))  # type: ignore[call-overload]
    outcome = row["outcome"] if row else None
    return Problem(409, f"run {run_id} has ended ({outcome})", outcome=outcome,
                   ended_by=row["ended_by"] if row else None)


def openapi(request: Request) -> Response:
    """GET /api/openapi.json: the ingest API's description (no login: it is documentation)."""
    return JSONResponse(json.loads(OPENAPI.read_text(encoding="utf-8")))


def routes() -> list[Route]:
    runs = "/api/runs/{run_id:id}"
    ping = "/api/ping/{pipeline:path}"
    return [
        Route("/api/openapi.json", openapi),
        Route("/api/runs", open_run, methods=["POST"]),
        Route(runs + "/steps", start_step, methods=["POST"]),
        Route(runs + "/steps/{step_id:id}", end_step, methods=["PATCH"]),
        Route(runs + "/errors", record_errors, methods=["POST"]),
        Route(runs + "/end", end_run, methods=["POST"]),
        Route(runs + "/heartbeat", heartbeat, methods=["POST"]),
        Route(ping + "/start", ping_start, methods=["POST"]),
        Route(ping + "/success", ping_success, methods=["POST"]),
        Route(ping + "/fail", ping_fail, methods=["POST"]),
        Route(ping + "/{code:int}", ping_exit, methods=["POST"]),
    ]
