# Two commands matter: `make demo` and `make test`. Everything else is a step they use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv is the installer; bootstrap it with pip when the machine lacks it.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export KAP_HOME ?= $(CURDIR)/var
RUN := $(UV) run --frozen --no-sync
DEMO_PATIENTS ?= 200
DEMO_DAYS ?= 180
DEMO_FAULT_RATE ?= 0.01

.PHONY: help uv sync demo test test-scheduler test-spark generate run ui docs bench clean bi bi-sync test-bi

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

uv: ## Install uv if it is missing
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

sync: uv ## Install the locked environment into .venv
	$(UV) sync --frozen

demo: sync ## Set up, generate a sample clinic, run kap_nightly through Airflow, print a summary
	$(RUN) kap generate --out $(KAP_HOME)/landing --patients $(DEMO_PATIENTS) --days $(DEMO_DAYS) --fault-rate $(DEMO_FAULT_RATE)
	$(RUN) kap airflow dags test kap_nightly
	@$(RUN) kap summary

PYTEST_ARGS ?= -n 2 --dist loadfile
test: sync ## Run the test suite but the scheduler and Spark tests (two workers; PYTEST_ARGS= for one)
	$(RUN) pytest $(PYTEST_ARGS) -m "not scheduler and not spark"

test-scheduler: sync ## kap_nightly under a real Airflow scheduler (LocalExecutor), a few minutes
	$(RUN) pytest -m scheduler

run: sync ## Run the nightly pipeline without Airflow on $(KAP_HOME)/landing
	$(RUN) kap run $(KAP_HOME)/landing

ui: sync ## Airflow standalone on http://127.0.0.1:8080 (login in the README)
	@echo "Airflow UI: http://127.0.0.1:$${AIRFLOW__API__PORT:-8080} - user admin, password in $(KAP_HOME)/airflow/simple_auth_manager_passwords.json.generated (written on first start)"
	$(RUN) kap airflow standalone

BI_RUN := cd bi && $(UV) run --frozen --no-sync
bi-sync: uv ## Install Superset's own locked environment into bi/.venv
	cd bi && $(UV) sync --frozen

bi: bi-sync ## Superset on http://127.0.0.1:8088 with the "KAP clinic operations" dashboard (after make demo)
	$(BI_RUN) python kap_bi.py serve

TEST_BI_HOME ?= /tmp/kap-test-bi
test-bi: sync bi-sync ## Superset test: a small clinic published, dashboard provisioned, every chart queried, rendered in headless Chromium
	rm -rf $(TEST_BI_HOME)
	$(RUN) kap generate --out $(TEST_BI_HOME)/landing --patients 60 --days 120 --seed 5 > /dev/null
	KAP_HOME=$(TEST_BI_HOME) $(RUN) kap run $(TEST_BI_HOME)/landing
	$(BI_RUN) python kap_bi.py check --analytics $(TEST_BI_HOME)/analytics.duckdb --screenshot $(CURDIR)/docs/bi-dashboard.png

# The spark extra (pyspark, dbt-spark) only here: Great Expectations imports pyspark's connect
# modules whenever pyspark is installed, so `make test` (whose sync removes the extra) stays without it.
# KAP_SPARK_UNIT_TESTS=1 adds the dbt unit tests on Spark (about 6 minutes more on a busy machine).
test-spark: uv ## The marts built on DuckDB and on Spark, published tables compared row for row (installs the spark extra)
	$(UV) sync --frozen --extra spark
	KAP_SPARK_UNIT_TESTS=$(KAP_SPARK_UNIT_TESTS) $(RUN) pytest -m spark -rP tests/test_spark.py

docs: sync ## Regenerate the docs rendered from code
	$(RUN) kap docs

# BENCH_LARGE=1 adds the 100k-patient size (about half an hour more)
BENCH_ARGS ?= --sizes 1000,10000,50000 --days 365 --out bench/RESULTS.md --work /tmp/kap-bench $(if $(BENCH_LARGE),--large)
bench: sync ## Performance figures (ingest vs native read, kap run, incremental night, scaling, dags/, scheduled night) -> bench/RESULTS.md
	$(RUN) python bench/run_bench.py $(BENCH_ARGS)
	$(RUN) python bench/notes_throughput.py --tagging-only --label "this commit"

clean: ## Remove everything generated under $(KAP_HOME)
	rm -rf $(KAP_HOME)
