"""The benchmark harness: `python bench/run.py [--quick]` (or `make bench` / `make bench-quick`).

Prints a table for people and, as its last line, one JSON object with exactly the keys
lifecycle_ratio_vs_raw_sqlite, start_run_ratio_1m_vs_empty, record_errors_per_s, record_errors_ratio_vs_raw,
import_ms, import_ratio_vs_bare_python, crash_record_ms, rss_overhead_mb, lifecycle_ratio_unredacted,
record_errors_redaction_ratio (redaction on over off; the other figures are with redaction on, as shipped),
log_call_ratio_with_ring (a `logging` call with the log ring over without). The
full run also writes bench/RESULTS.md (machine, table, JSON). Every figure is a ratio or a rate measured side by
side in this one run; see each module's docstring for how.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bulk  # noqa: E402
import history  # noqa: E402
import lifecycle  # noqa: E402
import logring  # noqa: E402
import process_costs  # noqa: E402
from benchlib import cache_dir, machine, table, verdict, write_section  # noqa: E402

# (rounds, batch sizes, history size) per mode. Quick fits in 60 s including a first build of its history.
MODES = {
    "quick": {"lifecycle": (9, 40), "history_runs": 200_000, "start_run": (9, 20), "bulk": 9, "import": 11,
              "crash": 5, "rss": 3, "logring": 41},
    "full": {"lifecycle": (21, 100), "history_runs": 1_000_000, "start_run": (21, 50), "bulk": 15, "import": 31,
             "crash": 15, "rss": 5, "logring": 101},
}

GOALS = {
    "lifecycle_ratio_vs_raw_sqlite": (1.3, False),
    "start_run_ratio_1m_vs_empty": (2.0, False),
    "record_errors_per_s": (200_000, True),
    "record_errors_ratio_vs_raw": (1.5, False),
    "import_ms": (50, False),
    "import_ratio_vs_bare_python": (2.0, False),
    "crash_record_ms": (50, False),
    "record_errors_redaction_ratio": (1.3, False),
    "log_call_ratio_with_ring": (1.1, False),
}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and a 200k-run history (< 60 s)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    plan = MODES[mode]
    began = time.perf_counter()
    history_path, build_s = history.ensure_history(plan["history_runs"], log=say)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=cache_dir()))
    try:
        # First: the log ring is measured installed and not, before any start_run of this process installs it.
        say("measure 8: a logging call with the log ring vs without …")
        ring = logring.measure(plan["logring"])
        say("measure 1: lifecycle vs raw sqlite3 …")
        life = lifecycle.measure(workdir, *plan["lifecycle"])
        say("measure 3: start_run on a long history vs empty …")
        hist = history.measure(history_path, workdir, *plan["start_run"])
        say("measure 4: record_errors × 10,000 …")
        errors = bulk.measure(workdir, plan["bulk"])
        say("measure 4b: record_errors × 10,000 realistic messages, redaction on and off …")
        redaction = bulk.measure_redaction(workdir, plan["bulk"])
        say("measure 5: import cost …")
        imp = process_costs.measure_import(plan["import"])
        say("measure 6: crash to committed crash row …")
        crash = process_costs.measure_crash(workdir, plan["crash"])
        say("measure 7: peak RSS of 1,000 lifecycles …")
        rss = process_costs.measure_rss(workdir, plan["rss"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    result = {
        "lifecycle_ratio_vs_raw_sqlite": round(life["ratio"], 3),
        "start_run_ratio_1m_vs_empty": round(hist["ratio"], 3),
        "record_errors_per_s": round(errors["per_s"]),
        "record_errors_ratio_vs_raw": round(errors["ratio"], 3),
        "import_ms": round(imp["ms"], 1),
        "import_ratio_vs_bare_python": round(imp["ratio"], 3),
        "crash_record_ms": round(crash["ms"], 2),
        "rss_overhead_mb": round(rss["mb"], 1),
        "lifecycle_ratio_unredacted": round(life["unredacted_ratio"], 3),
        "record_errors_redaction_ratio": round(redaction["ratio"], 3),
        "log_call_ratio_with_ring": round(ring["null"]["ratio"], 3),
    }
    runs = plan["history_runs"]
    size = f"{runs:,} runs, {runs * history.STEPS_PER_RUN:,} steps, ~{runs * history.ERRORS_PER_RUN:,} errors"
    t_ms, r_ms = life["tracker_ms"], life["raw_ms"]
    rows = [
        ("lifecycle_ratio_vs_raw_sqlite", f"{life['ratio']:.2f}", _goal(result, "lifecycle_ratio_vs_raw_sqlite"),
         f"tracker {t_ms:.2f} ms / raw {r_ms:.2f} ms per lifecycle ({lifecycle.CALLS} calls, 32 commits; "
         f"{life['statements'][0]} vs {life['statements'][1]} SQL statements); "
         f"median of {plan['lifecycle'][0]} rounds × {plan['lifecycle'][1]}"),
        ("lifecycle_ratio_unredacted", f"{life['unredacted_ratio']:.2f}", "—",
         "the same lifecycles with redaction off (redact.configure(enabled=False)), beside the line above, which is "
         "with redaction on, as shipped (the redaction issue's goal for it: ≤ 1.5)"),
        ("start_run_ratio_1m_vs_empty", f"{hist['ratio']:.2f}", _goal(result, "start_run_ratio_1m_vs_empty"),
         f"start_run {hist['big_ms']:.3f} ms on {size} / {hist['empty_ms']:.3f} ms on an empty database"
         + (" — QUICK MODE: 200k-run history, not 1M" if runs != 1_000_000 else "")),
        ("record_errors_per_s", f"{errors['per_s']:,.0f}", _goal(result, "record_errors_per_s"),
         f"10,000 dicts in one call (best round {errors['best_per_s']:,.0f}/s); a plain executemany "
         f"{errors['executemany_per_s']:,.0f}/s"),
        ("record_errors_ratio_vs_raw", f"{errors['ratio']:.2f}", _goal(result, "record_errors_ratio_vs_raw"),
         f"the same call's time over the same multi-row INSERTs written by hand ({errors['raw_per_s']:,.0f} "
         "rows/s), median of paired rounds"),
        ("record_errors_redaction_ratio", f"{redaction['ratio']:.2f}",
         _goal(result, "record_errors_redaction_ratio"),
         f"record_errors of 10,000 realistic messages (URLs, database errors, 1 in 8 with a secret), redaction on "
         f"{redaction['on_per_s']:,.0f}/s over off {redaction['off_per_s']:,.0f}/s, median of paired rounds"),
        ("import_ms", f"{imp['ms']:.1f}", _goal(result, "import_ms"),
         f"`python -c 'import runtracker'` − `python -c pass` ({imp['pass_ms']:.0f} ms); heavy modules "
         f"imported: {', '.join(imp['heavy']) or 'none'}"),
        ("import_ratio_vs_bare_python", f"{imp['ratio']:.2f}", _goal(result, "import_ratio_vs_bare_python"),
         "`import runtracker`'s added time over a bare interpreter's whole start-up, median of paired rounds"),
        ("crash_record_ms", f"{crash['ms']:.2f}", _goal(result, "crash_record_ms"),
         f"`raise` → crash row committed, probed in-process by the excepthook runtracker chains; median of "
         f"{len(crash['samples'])} subprocesses"),
        ("rss_overhead_mb", f"{rss['mb']:.1f}", "—",
         f"peak RSS, {rss['lifecycles']:,} lifecycles − import only ({rss['import_mb']:.1f} MB); a single "
         f"lifecycle: {rss['first_mb']:.1f} MB"),
        ("log_call_ratio_with_ring", f"{ring['null']['ratio']:.2f}", _goal(result, "log_call_ratio_with_ring"),
         f"`log.info(...)` with the log ring's factory (50 records) / without, to a NullHandler: "
         f"{ring['null']['ring_us']:.2f} / {ring['null']['plain_us']:.2f} µs CPU per call; to a formatting "
         f"StreamHandler on os.devnull {ring['stream']['ratio']:.2f} ({ring['stream']['ring_us']:.2f} / "
         f"{ring['stream']['plain_us']:.2f} µs); median of {plan['logring']} alternated rounds × "
         f"{logring.CALLS:,} calls"),
    ]
    text = table(rows)
    elapsed = time.perf_counter() - began
    print(f"runtracker benchmarks ({mode} mode, {elapsed:.0f} s"
          + (f", incl. {build_s:.0f} s building the cached history" if build_s else "") + ")\n")
    print(text)
    print()
    if mode == "full":
        _write_results(text, result, elapsed)
        print(f"written to {Path('bench/RESULTS.md')}\n")
    print(json.dumps(result))
    return 0


def _goal(result: dict[str, float], key: str) -> str:
    goal, higher = GOALS[key]
    return verdict(result[key], goal, higher)


def _write_results(text: str, result: dict[str, float], elapsed: float) -> None:
    facts = machine()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        "## Tracker costs (`make bench`)",
        "",
        f"Measured {when} in {elapsed:.0f} s on: {facts['nproc']} cores ({facts['cpu']}), {facts['memory']} RAM, "
        f"{facts['os']}, {facts['python']}, SQLite {facts['sqlite']}, disk {facts['disk']}. The machine is shared "
        "with other work, so every figure is a ratio or rate measured side by side in one run (alternating "
        "rounds, medians).",
        "",
        text,
        "",
        "```json",
        json.dumps(result),
        "```",
    ]
    write_section("core", "\n".join(body))


if __name__ == "__main__":
    sys.exit(main())
