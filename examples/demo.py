"""`make demo`: run the example pipeline three times (success, partial, crash), then list the runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    pipeline = os.path.join(HERE, "sync_nikki.py")
    for mode in ("success", "partial", "crash"):
        print(f"\n$ python examples/sync_nikki.py --mode {mode}", flush=True)
        code = subprocess.call([sys.executable, pipeline, "--mode", mode])
        print(f"(exit code {code})", flush=True)
    print("\n$ runtracker runs --pipeline nikki --limit 10", flush=True)
    code = subprocess.call([sys.executable, "-m", "runtracker", "runs", "--pipeline", "nikki", "--limit", "10"])
    crashed = subprocess.run(
        [sys.executable, "-m", "runtracker", "runs", "--pipeline", "nikki", "--outcome", "failure", "-n", "1",
         "--json"],
        capture_output=True, text=True,
    ).stdout.strip()
    if crashed:
        run_id = str(json.loads(crashed)["id"])
        print(f"\n$ runtracker show {run_id}   # the crashed run: failure, with its crash row", flush=True)
        subprocess.call([sys.executable, "-m", "runtracker", "show", run_id])
    return code


if __name__ == "__main__":
    raise SystemExit(main())
