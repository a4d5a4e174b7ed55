"""`make demo`: run the example pipeline three times (success, partial, crash), then list the runs."""

from __future__ import annotations

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
    return subprocess.call([sys.executable, "-m", "runtracker", "runs", "--pipeline", "nikki", "--limit", "10"])


if __name__ == "__main__":
    raise SystemExit(main())
