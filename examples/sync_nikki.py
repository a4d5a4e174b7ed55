"""A nikki-like pipeline: download contributions, then sync them to the member system (all local fake data).

    python examples/sync_nikki.py                 # success
    python examples/sync_nikki.py --mode partial  # some members fail to sync: outcome partial
    python examples/sync_nikki.py --mode crash    # an uncaught exception outside any try/except

It uses the tracker the way the seed's pipelines do: start_run, a step per stage with counts, errors per
member, end_run with stats. The crash mode dies mid-sync; the run is still recorded as `failure`.
"""

from __future__ import annotations

import argparse
import random

from runtracker import RunTracker


def download_contributions(year: int) -> list[dict[str, object]]:
    rng = random.Random(year)
    return [{"member": f"KNVB{1000 + i}", "year": year, "amount": rng.randint(50, 250)} for i in range(40)]


def sync_member(contribution: dict[str, object], mode: str, index: int) -> str:
    if mode == "partial" and index % 9 == 4:
        raise ValueError(f"member {contribution['member']} not found in the member system")
    if mode == "crash" and index == 25:
        # A bug outside the pipeline's own try/except: this is what used to leave runs `running` forever.
        raise RuntimeError("connection to the member system reset")
    return "created" if index % 3 == 0 else ("updated" if index % 3 == 1 else "skipped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["success", "partial", "crash"], default="success")
    parser.add_argument("--db", default=None, help="database path or URL (default: $RUNTRACKER_DB or ./data/)")
    args = parser.parse_args()

    tracker = RunTracker("nikki", db=args.db)
    tracker.start_run()

    step = tracker.start_step("nikki-download")
    contributions = download_contributions(2026)
    tracker.end_step(step, outcome="success", created=len(contributions), detail={"year": 2026})

    step = tracker.start_step("nikki-sync")
    counts = {"created": 0, "updated": 0, "skipped": 0, "failed": 0}
    errors = []
    for index, contribution in enumerate(contributions):
        if args.mode == "crash":
            counts[sync_member(contribution, args.mode, index)] += 1  # no try/except: crashes the process
            continue
        try:
            counts[sync_member(contribution, args.mode, index)] += 1
        except ValueError as exc:
            counts["failed"] += 1
            errors.append({"member_identifier": contribution["member"], "message": str(exc)})
    tracker.record_errors("nikki-sync", step, errors)
    outcome = "partial" if counts["failed"] else "success"
    tracker.end_step(step, outcome=outcome, **counts)

    tracker.end_run(outcome, {"contributions": len(contributions), **counts})
    tracker.close()
    print(f"nikki sync finished: {outcome}, {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
