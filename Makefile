# shucang — every target creates the environment if it is missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export PYTHONUNBUFFERED := 1

.PHONY: env manifest demo test test-live test-store test-sail test-celery test-fast ui up down share-server console assessment bench bench-scale lint summary clean

$(VENV)/.synced: pyproject.toml uv.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --quiet --compile-bytecode
	@touch $@

env: $(VENV)/.synced

# The dbt manifest is prepared ahead (dbt parse), so loading the Dagster definitions never parses the project.
MANIFEST := dbt_project/target/manifest.json
DBT_FILES := dbt_project/dbt_project.yml $(shell find dbt_project/models dbt_project/seeds dbt_project/macros dbt_project/tests -type f 2>/dev/null)
$(MANIFEST): $(VENV)/.synced $(DBT_FILES)
	$(PY) -c "from orchestration.dbt.project import prepare; prepare()"
	@touch $@

manifest: $(MANIFEST)

demo: env $(MANIFEST) ## generate the demo sources and run the whole pipeline; prints what it built and where
	$(PY) -m orchestration.cli demo $(if $(SCALE),--scale $(SCALE),) $(if $(SOURCES),--sources $(SOURCES),)

summary: env $(MANIFEST)
	$(PY) -m orchestration.cli summary

test: env $(MANIFEST) ## the test suite (CI runs exactly this)
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not long"

test-store: env $(MANIFEST) ## the whole demo with its lake on a SeaweedFS it starts, equal to the local demo (~4 min)
	$(PY) -m pytest -q -m long tests/test_object_store.py

test-sail: env $(MANIFEST) ## the models and a backfill on Sail over a local-folder lake, equal to the DuckDB demo (make test runs the same on a SeaweedFS; ~4 min)
	$(PY) -m pytest -q -m long tests/test_sail.py

test-celery: env $(MANIFEST) ## the whole demo with its steps on 2 Celery workers (RabbitMQ, Redis), equal to the local demo (~4 min)
	$(PY) -m pytest -q -m long tests/test_celery.py

test-live: env $(MANIFEST) ## both demos, files and live sources (databases, interface, broker); every published table equal (~3 min)
	$(PY) -m orchestration.cli demo $(if $(SCALE),--scale $(SCALE),)
	$(PY) -m orchestration.cli demo $(if $(SCALE),--scale $(SCALE),) --sources live

test-fast: env $(MANIFEST) ## the pure unit tests: no Dagster run, no dbt build, no server (under a minute)
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not integration"

ui: env $(MANIFEST) ## Dagster UI on 127.0.0.1:3000 with the project-local DAGSTER_HOME
	$(PY) -m orchestration.cli prepare-instance >/dev/null
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

up: env $(MANIFEST) ## the continuous deployment: webserver (127.0.0.1:3000) + daemon on PostgreSQL (127.0.0.1:5432); EXECUTOR=celery: steps on 2 Celery workers
	$(PY) -m orchestration.cli up $(if $(EXECUTOR),--executor $(EXECUTOR),) $(if $(WORKERS),--workers $(WORKERS),)

down: env ## stop what `make up` started
	$(PY) -m orchestration.cli down

share-server: env ## the Delta Sharing service for approved data requests, on 127.0.0.1:8765 (SHARE_PORT=…)
	$(PY) -m exchange.server --host 127.0.0.1 --port $${SHARE_PORT:-8765}

console: env ## the steward console on 127.0.0.1:3100 (CONSOLE_PORT=…); `python -m console demo-users` after make demo
	$(PY) -m console serve --host 127.0.0.1 --port $${CONSOLE_PORT:-3100}

assessment: env ## 自评: the data section of the annual self-assessment, HTML and PDF with charts (YEAR=2023)
	$(PY) -m console assessment --year $${YEAR:-2023}

bench: env $(MANIFEST) ## benchmark against a plain DuckDB baseline (BENCH_SCALE=100: 100k enterprises, 10M telemetry rows)
	$(PY) -m benchmarks.run --scale $${BENCH_SCALE:-100}

bench-scale: env $(MANIFEST) ## the stages at scales 1 and 10 (SCALES="1 10 100"), EXECUTOR=celery for the distributed profile, DBT_TARGET=sail for dbt on Sail: time, memory, growth
	$(PY) -m benchmarks.scale --scales $${SCALES:-1 10} $(if $(EXECUTOR),--executor $(EXECUTOR),) $(if $(DBT_TARGET),--dbt-target $(DBT_TARGET),)

lint: env ## ruff (Python) and sqlfluff (the dbt project's SQL, dbt_project/.sqlfluff)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	cd dbt_project && $(CURDIR)/$(VENV)/bin/sqlfluff lint models tests macros

clean:
	rm -rf data data-* .dagster_home .dagster_home_pg
