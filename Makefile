PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast browser lint bench bench-quick bench-peers bench-reaper bench-alerts bench-web bench-load bench-upgrade clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The dashboard's extra (Starlette, Jinja2, uvicorn, ...): `make demo` ends by serving the demo database.
WEB_STAMP := $(VENV)/.installed-web
$(WEB_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[web]'
	touch $(WEB_STAMP)

# DEMO_PORT=8080 make demo to serve on another port.
demo: $(STAMP) $(WEB_STAMP)
	$(PY) examples/demo.py

test: $(STAMP) browser
	$(PY) -m pytest -q -n 2 tests

# Debian's Chromium for tests/browser/ (Playwright drives it; Playwright's own browser download is not reachable).
# Nothing to do once /usr/bin/chromium exists; installing it needs root (CI runs as root).
CHROMIUM := /usr/bin/chromium
browser: $(CHROMIUM)

$(CHROMIUM):
	@if [ "$$(id -u)" != 0 ]; then \
		echo "Browser tests need Debian's Chromium at $(CHROMIUM), and installing it needs root:" >&2; \
		echo "  sudo apt-get update && sudo apt-get install -y chromium chromium-driver" >&2; \
		exit 1; \
	fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver

# The inner loop: every test that runs in-process (no real subprocess), on SQLite and PostgreSQL.
test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not subprocess" tests

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff mypy types-psutil
	$(VENV)/bin/ruff check src tests examples bench
	$(VENV)/bin/mypy src --ignore-missing-imports

# Benchmarks (bench/README.md): ratios measured side by side; the quick one ends with one JSON line.
bench: $(STAMP)
	$(PY) bench/run.py

bench-quick: $(STAMP)
	$(PY) bench/run.py --quick

# How long a SIGKILLed run stays `running` under `runtracker monitor` (same host, simulated cross-host).
bench-reaper: $(STAMP)
	$(PY) bench/reaper_latency.py

# The monitor: SIGKILL -> reaped and -> alert mailed, end_run -> alert mailed, a pass at 1,000,000 runs and 50
# scheduled pipelines; SQLite and PostgreSQL (RUNTRACKER_BENCH_PG, default the local test server).
bench-alerts: $(STAMP)
	$(PY) bench/alerts.py

# The dashboard: server time per page at 1,000,000 runs / 2,000,000 steps / 5,000,000 errors on SQLite and
# PostgreSQL, database time against hand-written SQL, overview requests/s over HTTP, the original's query shapes.
# The history is built once (minutes) and cached. `$(PY) bench/web.py --quick` for a 120,000-run check.
bench-web: $(STAMP) $(WEB_STAMP)
	$(PY) bench/web.py

# MLflow gets a venv of its own so that the project's dependencies stay lean.
MLFLOW_VENV := bench/.venv-mlflow
$(MLFLOW_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MLFLOW_VENV)/bin/python -m pip install --quiet 'mlflow==3.17.2' -e .
	touch $@

bench-peers: $(MLFLOW_VENV)/.installed
	$(MLFLOW_VENV)/bin/python bench/peers_mlflow.py

# 8 processes x 500 runs on SQLite and PostgreSQL (RUNTRACKER_BENCH_PG, default the local test server), then
# the same with 1 in 10 processes SIGKILLed mid-run; every row checked.
bench-load: $(STAMP)
	$(PY) bench/load.py

# The ingest API: 8 HTTP clients x 500 runs into `runtracker serve`, SQLite and PostgreSQL (RUNTRACKER_BENCH_PG);
# runs/s and every acknowledged row checked. `$(PY) bench/ingest.py --quick` for 8 x 50.
.PHONY: bench-ingest
bench-ingest: $(STAMP) $(WEB_STAMP)
	$(PY) bench/ingest.py

# PostgreSQL restarted twice (a private server in a temp dir: nobody else's connections) and connections dropped
# at COMMIT, under a tracked pipeline: rows lost, phantom runs, time to the correct row after the server is back.
.PHONY: bench-pg-outage
bench-pg-outage: $(STAMP)
	$(PY) bench/pg_outage.py

# Schema version 6 on 1,000,000 runs of an earlier runtracker's layout, SQLite and PostgreSQL, vs a plain copy.
bench-upgrade: $(STAMP)
	$(PY) bench/upgrade.py

# Soak: 4 pipeline processes killed at random (SIGKILL/TERM/INT/HUP) under `runtracker monitor`, SOAK_MINUTES on
# SQLite, then on PostgreSQL (RUNTRACKER_BENCH_PG); every acknowledged call checked in the database, runs left
# running, RSS of the monitor and of a long-lived process, database size. `$(PY) bench/soak.py --minutes 2` for short.
SOAK_MINUTES ?= 30
.PHONY: bench-soak
bench-soak: $(STAMP)
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES)

clean:
	rm -rf $(VENV) data build src/*.egg-info bench/.cache $(MLFLOW_VENV)
