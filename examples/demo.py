"""`make demo`: run the example pipeline three times (success, partial, crash), list the runs, then serve them on
the dashboard (demo mode: log in as demo / demo) until Ctrl-C."""

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
    if code == 0:
        serve()
    return code


def serve() -> None:
    """Replace this process with the dashboard on the demo database (Ctrl-C goes straight to the server). A
    pipeline config in data/ gives nikki a command, so that its Start button works."""
    port = os.environ.get("DEMO_PORT", "8000")
    os.makedirs("data", exist_ok=True)
    config = os.path.join("data", "demo-runtracker.toml")
    with open(config, "w") as f:
        command = [sys.executable, os.path.join(HERE, "sync_nikki.py"), "--mode", "partial"]
        f.write("[pipelines.nikki]\ncommand = " + json.dumps(command) + "\n")
    print(f"\n$ runtracker serve --demo --port {port} --config {config}", flush=True)
    print(f"Dashboard: http://localhost:{port}/  (log in as demo / demo; Ctrl-C stops it)", flush=True)
    argv = [sys.executable, "-m", "runtracker", "serve", "--demo", "--port", port, "--config", config]
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    raise SystemExit(main())
