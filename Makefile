# KPIdelivery MLOps — everything users run goes through these targets.
# `make demo` and `make test` set the project up first (idempotent), so a fresh machine needs nothing else.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
JDBC_JAR    ?= /usr/share/java/postgresql.jar
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export GX_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export PYTHONPATH := $(CURDIR)

.PHONY: help setup system-deps demo test test-fast lint constraints bench-crypto bench-churn bench-score bench-drift embedded-stop clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: system-deps $(STAMP) ## venv + pinned install + Java/JDBC checks (idempotent)

system-deps: ## Java 17 and the Debian PostgreSQL JDBC driver (installed when root)
	@bash infrastructure/scripts/system_deps.sh "$(JDBC_JAR)"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	@echo "[setup] installing pinned dependencies into $(VENV) (cold: ~4-6 min, with a warm pip cache: ~3 min)"
	@$(PY) -m pip install -c constraints.txt -e ".[dev]" > $(VENV)/install.log 2>&1 \
		|| { tail -40 $(VENV)/install.log; echo "[setup] pip install failed (log: $(VENV)/install.log)" >&2; exit 1; }
	@touch $(STAMP)
	@echo "[setup] done"

demo: setup ## run both workflows (crypto events, churn) on the embedded default and print what they did
	@$(PY) -m jobs.demo

test: setup ## the whole test suite (real PostgreSQL, Spark local)
	@$(PY) -m pytest

test-fast: setup ## unit tests only
	@$(PY) -m pytest tests/unit

lint: setup ## ruff (style + import order)
	@$(PY) -m ruff check jobs tests bench airflow
	@$(PY) -m ruff format --check jobs tests bench airflow

constraints: ## re-resolve constraints.txt from pyproject.toml in a scratch venv
	@rm -rf var/constraints-venv && $(PYTHON_BOOT) -m venv var/constraints-venv
	@var/constraints-venv/bin/pip install -q -e ".[dev]"
	@{ head -2 constraints.txt; var/constraints-venv/bin/pip freeze --exclude-editable; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt && rm -rf var/constraints-venv && echo "constraints.txt updated"

bench-crypto: setup ## crypto refresh benchmark vs COPY floor and pure-SQL refresh (100k and 1M rows)
	@$(PY) bench/crypto_refresh.py

bench-churn: setup ## churn features + HPO training on 100k customers vs the oracle AUC
	@$(PY) bench/churn_train.py

bench-score: setup ## single-row latency of the JVM-free scorer (with/without SHAP) vs mlflow.pyfunc on Spark
	@$(PY) bench/score_latency.py

bench-drift: setup ## Evidently drift report time on 100k rows x 20 columns
	@$(PY) bench/drift_report.py

embedded-stop: setup ## stop the embedded PostgreSQL that `make demo` may have started
	@$(PY) -m jobs.common.postgres stop

clean: ## remove local state (var/), keeps the venv
	@rm -rf var spark-warehouse metastore_db derby.log
