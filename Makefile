# KPIdelivery MLOps — everything users run goes through these targets.
# `make demo` and `make test` set the project up first (idempotent), so a fresh machine needs nothing else.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
# pgAdmin 4 of the native stack, in a venv of its own (its pins clash with the project's): the settings'
# PGADMIN_VENV, installed from its lock file
PGADMIN_VENV ?= .venv-pgadmin
PGADMIN_LOCK := infrastructure/pgadmin/requirements.txt
JDBC_JAR    ?= /usr/share/java/postgresql.jar
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export GX_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export PYTHONPATH := $(CURDIR)

.PHONY: crypto-replay help setup system-deps browser-deps app demo test test-fast test-concurrency lint constraints bench-crypto bench-crypto-source bench-churn bench-score bench-serving bench-drift bench-app bench-stack bench-driver-memory bench-jvm \
	embedded-stop clean init up down destroy reset ps logs dag-run dag-status churn-watchdog churn-train \
	churn-drift mlops-run

# Which stack `up`/`down`/... drive: compose when a Docker engine answers, else the native stack (real
# processes on this machine). Override with STACK=native or STACK=compose.
STACK   ?= $(shell docker info >/dev/null 2>&1 && echo compose || echo native)
COMPOSE := docker compose -f infrastructure/docker-compose.yml --env-file .env
# builds what changed, starts everything and waits for every health check (fails after 10 min, as native up
# fails after its timeout); one-shot services count once they have completed
COMPOSE_UP := $(COMPOSE) up -d --build --wait --wait-timeout 600
COMPOSE_VAR_VOLUME := kpidelivery_var
NATIVE  := $(PY) -m infrastructure.native.stack
CONTROL := $(PY) -m infrastructure.control
DATE    ?=
SNAPSHOT ?=
SPEC    ?=

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: system-deps $(STAMP) pgadmin-deps ## venv + pinned install + Java/JDBC checks + pgAdmin's venv (idempotent)

system-deps: ## Java 17 and the Debian PostgreSQL JDBC driver (installed when root)
	@bash infrastructure/scripts/system_deps.sh "$(JDBC_JAR)"

browser-deps: ## + Debian's Chromium, for the app's real-browser test (installed when root)
	@bash infrastructure/scripts/system_deps.sh "$(JDBC_JAR)" --browser

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	@echo "[setup] installing pinned dependencies into $(VENV) (cold: ~4-6 min, with a warm pip cache: ~3 min)"
	@$(PY) -m pip install -c constraints.txt -e ".[dev]" > $(VENV)/install.log 2>&1 \
		|| { tail -40 $(VENV)/install.log; echo "[setup] pip install failed (log: $(VENV)/install.log)" >&2; exit 1; }
	@touch $(STAMP)
	@echo "[setup] done"

.PHONY: pgadmin-deps pgadmin-lock
pgadmin-deps: $(PGADMIN_VENV)/.installed ## pgAdmin 4 in its own venv (PGADMIN_VENV), from its lock file

# a changed lock rebuilds the venv from scratch, so it holds exactly the lock; made with the project's Python
$(PGADMIN_VENV)/.installed: $(PGADMIN_LOCK) | $(STAMP)
	@echo "[setup] installing pgAdmin 4 into $(PGADMIN_VENV) (~620 MB: ~40 s here, minutes on a slow network)"
	@$(PY) -m venv --clear $(PGADMIN_VENV)
	@$(PGADMIN_VENV)/bin/python -m pip install -r $(PGADMIN_LOCK) > $(PGADMIN_VENV)/install.log 2>&1 \
		|| { tail -40 $(PGADMIN_VENV)/install.log; echo "[setup] pip install failed (log: $(PGADMIN_VENV)/install.log)" >&2; exit 1; }
	@touch $@
	@echo "[setup] pgAdmin done"

pgadmin-lock: ## re-resolve infrastructure/pgadmin/requirements.txt in a scratch venv (PGADMIN_RELEASE=x.y to change it)
	@rm -rf var/pgadmin-lock-venv && $(PYTHON_BOOT) -m venv var/pgadmin-lock-venv
	@var/pgadmin-lock-venv/bin/pip install -q pgadmin4==$(or $(PGADMIN_RELEASE),$(shell sed -n 's/^pgadmin4==//p' $(PGADMIN_LOCK)))
	@{ head -2 $(PGADMIN_LOCK); var/pgadmin-lock-venv/bin/pip freeze --all --exclude pip; } > $(PGADMIN_LOCK).new
	@mv $(PGADMIN_LOCK).new $(PGADMIN_LOCK) && rm -rf var/pgadmin-lock-venv && echo "$(PGADMIN_LOCK) updated"

demo: setup ## run both workflows (crypto events, churn) on the embedded default and print what they did
	@$(PY) -m jobs.demo

# `make test` runs two pytest sessions side by side, each with a test database of its own on the one server:
# the native stack test (a PostgreSQL, a Redis and ports of its own), then the Spark-cluster, role and entry-point
# tests and the service-free unit and static tests; beside it every other test, one after another as before.
# Half of the stack test waits for Airflow, so the two overlap well on two cores. (pytest-xdist's groups do not
# work with pytest 9 yet.) Each session prints its own report; the exit code is the first failure's.
SIDE := tests/stack tests/integration/common tests/unit tests/static
TEST_DB ?= $(or $(KPI_TEST_DB),kpidelivery_test)
test: setup browser-deps ## the whole test suite (real PostgreSQL, Redis, Spark, Airflow, MLflow, Chromium)
	@mkdir -p var; \
	KPI_TEST_DB=$(TEST_DB)_side $(PY) -m pytest $(SIDE) > var/test-side.log 2>&1 & side=$$!; \
	KPI_TEST_DB=$(TEST_DB) $(PY) -m pytest $(addprefix --ignore=,$(SIDE)); main=$$?; \
	wait $$side; side=$$?; \
	echo "== $(SIDE) (beside the above; var/test-side.log)"; cat var/test-side.log; \
	echo "== exit codes: the other tests $$main, $(SIDE) $$side"; \
	for rc in $$main $$side; do case $$rc in 0|5) ;; *) exit $$rc;; esac; done; \
	[ $$main -eq 5 ] && [ $$side -eq 5 ] && exit 5; exit 0

app: setup ## the Streamlit app on APP_PORT (8601), scoring with the production model
	@$(PY) -m app

test-fast: setup ## unit tests: pure functions and pure Spark (rules, feature leakage, scorer parity), no services
	@$(PY) -m pytest tests/unit

test-concurrency: setup ## 20 pairs of concurrent runs of one window (make test runs 2), ~25 min
	@KPI_CONCURRENT_PAIRS=20 $(PY) -m pytest tests/integration/test_crypto_concurrency.py -k two_runs -s

lint: setup ## ruff (style + import order)
	@$(PY) -m ruff check jobs tests bench airflow infrastructure app notebooks
	@$(PY) -m ruff format --check jobs tests bench airflow infrastructure app notebooks

constraints: ## re-resolve constraints.txt from pyproject.toml in a scratch venv
	@rm -rf var/constraints-venv && $(PYTHON_BOOT) -m venv var/constraints-venv
	@var/constraints-venv/bin/pip install -q -e ".[dev]"
	@{ head -2 constraints.txt; var/constraints-venv/bin/pip freeze --exclude-editable; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt && rm -rf var/constraints-venv && echo "constraints.txt updated"

bench-jvm: setup ## a short job's CPU and wall time with SPARK_JVM_OPTIONS=-XX:TieredStopAtLevel=1 vs the JVM's defaults
	@$(PY) bench/jvm_options.py

bench-crypto: setup ## crypto refresh benchmark vs COPY floor and pure-SQL refresh (100k, 1M and 4M rows)
	@$(PY) bench/crypto_refresh.py

bench-driver-memory: setup ## driver peak RSS at 1x and 4x data (crypto 1M/4M rows, churn 100k/400k customers) on 2 workers
	@$(PY) bench/driver_memory.py

bench-crypto-source: setup ## window read time vs history size (1M window rows in 1M, 10M, 20M rows) vs a full parse
	@$(PY) bench/crypto_source_read.py

bench-churn: setup ## churn features + HPO training on 100k customers vs the oracle AUC
	@$(PY) bench/churn_train.py

bench-score: setup ## single-row latency of the JVM-free scorer (with/without SHAP) vs mlflow.pyfunc on Spark
	@$(PY) bench/score_latency.py

bench-serving: setup ## the REST scoring API under Locust on loopback: 1, 8, 32 users, p50/p95/p99, req/s, errors
	@$(PY) bench/serving_load.py

bench-drift: setup ## Evidently drift report time on 100k rows x 20 columns
	@$(PY) bench/drift_report.py

bench-app: setup browser-deps ## the app's click-to-result latency in Chromium (p50 over 50) vs the scorer (run `make demo` first)
	@$(PY) bench/app_latency.py

# --- stacks (native: no Docker; compose: infrastructure/docker-compose.yml) -------------------------------
init: setup ## databases (business DDL, Airflow, MLflow), Airflow migration, demo churn files (idempotent)
	@echo "[stack: $(STACK)]"
	@if [ "$(STACK)" = compose ]; then $(COMPOSE) run --rm airflow-init; else $(NATIVE) init; fi

up: setup ## start the stack and wait for every health check (prints URLs)
	@echo "[stack: $(STACK)]"
	@if [ "$(STACK)" = compose ]; then $(COMPOSE_UP) && $(COMPOSE) ps; else $(NATIVE) up; fi

down: setup ## stop what `up` started (nothing else)
	@echo "[stack: $(STACK)]"
	@if [ "$(STACK)" = compose ]; then $(COMPOSE) down; else $(NATIVE) down; fi

destroy: setup ## down + wipe this project's databases, buckets and local state
	@echo "[stack: $(STACK)]"
	@if [ "$(STACK)" = compose ]; then $(COMPOSE) down -v --remove-orphans; else $(NATIVE) destroy; fi

reset: setup ## destroy, init, up: a clean stack
	@echo "[stack: $(STACK)]"
	@if [ "$(STACK)" = compose ]; then $(COMPOSE) down -v --remove-orphans && $(COMPOSE_UP) && $(COMPOSE) ps; else $(NATIVE) reset; fi

ps: setup ## processes, health and memory
	@if [ "$(STACK)" = compose ]; then $(COMPOSE) ps -a && ids=$$($(COMPOSE) ps -q) && { [ -z "$$ids" ] || docker stats --no-stream \
		--format 'table {{.Name}}\t{{.MemUsage}}' $$ids; }; else $(NATIVE) ps; fi

logs: setup ## recent logs of every service (SERVICE=name for one)
	@if [ "$(STACK)" = compose ]; then $(COMPOSE) logs --tail 200 $(SERVICE); else $(NATIVE) logs $(SERVICE); fi

dag-run: setup ## trigger crypto_events_dag for DATE (default today) via the REST API, wait, print counts
	@$(CONTROL) dag-run $(if $(DATE),--date $(DATE))

crypto-replay: setup ## a steward's corrections (CORRECTIONS=file.csv, optional) of DATE's quarantine: load, run DATE again
	@$(PY) -m jobs.crypto_events.replay --date $(DATE) $(if $(CORRECTIONS),--corrections $(CORRECTIONS))

dag-status: setup ## latest runs of every DAG with task states
	@$(CONTROL) dag-status

churn-watchdog: setup ## run the churn data watchdog; new files -> asset -> churn_training_dag (waits)
	@$(CONTROL) churn-watchdog

churn-train: setup ## trigger churn_training_dag with SNAPSHOT and SPEC, wait, print the promotion
	@$(CONTROL) churn-train $(if $(SNAPSHOT),--snapshot $(SNAPSHOT)) $(if $(SPEC),--spec $(SPEC))

churn-drift: setup ## trigger the drift monitor for DATE, wait, print the verdict
	@$(CONTROL) churn-drift $(if $(DATE),--date $(DATE))

mlops-run: setup ## crypto run, churn watchdog -> training, drift monitor, in order
	@$(CONTROL) mlops-run $(if $(DATE),--date $(DATE))

bench-stack: setup ## native stack: start time, RSS per process, DAG trigger-to-success vs direct spark-submit
	@$(PY) bench/stack_overhead.py

embedded-stop: setup ## stop the embedded PostgreSQL that `make demo` may have started
	@$(PY) -m jobs.common.postgres stop

clean: ## remove local state (var/; compose: its var volume too), keeps the venv
	@if [ "$(STACK)" = compose ]; then $(COMPOSE) down --remove-orphans && docker volume rm -f $(COMPOSE_VAR_VOLUME); fi
	@rm -rf var spark-warehouse metastore_db derby.log
