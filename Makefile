# The verbs a newcomer looks for. Everything installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-sqlite test-postgresql lint typecheck bench chaos screenshots clean

# npm ci: bpmn-js for the web console, served from web/node_modules (no bundler; none of it is committed)
$(STAMP): pyproject.toml web/package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	npm ci --prefix web --no-audit --no-fund
	touch $(STAMP)

install: $(STAMP)

## Start Temporal (embedded), every worker pool and the API on http://127.0.0.1:8000; deploy examples/
run: $(STAMP)
	$(BIN)/aimatrix run

## Lint, type-check, then the whole test suite against real Temporal twice: on SQLite, then on PostgreSQL;
## then the chaos run (kill -9 of every part of the platform under 200 instances) on each database.
## Both suite runs always happen; any failure (lint, types, either run, a chaos check) fails `make test`.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@failed=""; \
	for db in sqlite postgresql; do \
	  echo; echo "=== pytest on $$db (AIMATRIX_TEST_DATABASE=$$db) ==="; \
	  AIMATRIX_TEST_DATABASE=$$db $(BIN)/python -m pytest -q $(PYTEST_ARGS) || failed="$$failed $$db"; \
	done; \
	if [ -n "$$failed" ]; then echo; echo "=== pytest FAILED on:$$failed ==="; exit 1; fi; \
	echo; echo "=== pytest passed on sqlite and postgresql ==="
	@echo; echo "=== chaos run on sqlite, then postgresql (make chaos also writes RELIABILITY.md) ==="
	$(BIN)/python -m benchmarks.chaos --output -
	$(BIN)/python -m benchmarks.chaos --output - --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

## The test suite on one database only (no lint); PYTEST_ARGS passes options or test paths to pytest
test-sqlite test-postgresql: test-%: $(STAMP)
	@echo "=== pytest on $* (AIMATRIX_TEST_DATABASE=$*) ==="
	AIMATRIX_TEST_DATABASE=$* $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Benchmarks; results land in BENCHMARKS.md
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_engine
	$(BIN)/python -m benchmarks.bench_instances --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
	$(BIN)/python -m benchmarks.bench_inference --temporal
	$(BIN)/python -m benchmarks.bench_sandbox
	$(BIN)/python -m benchmarks.bench_edge
	$(BIN)/python -m benchmarks.bench_twin
	$(BIN)/python -m benchmarks.bench_calls
	$(BIN)/python -m benchmarks.bench_long_instances
	$(BIN)/python -m benchmarks.bench_long_loops
	$(BIN)/python -m benchmarks.bench_inline_loop

## Kill -9 every part of the platform while 200 instances run; checks nothing was lost (RELIABILITY.md)
chaos: $(STAMP)
	$(BIN)/python -m benchmarks.chaos
	$(BIN)/python -m benchmarks.chaos --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

## Start the platform on a scratch data directory and save a PNG of each console page to screenshots/
screenshots: $(STAMP)
	$(BIN)/python -m aimatrix.screenshots --output screenshots

clean:
	rm -rf $(VENV) .aimatrix .pytest_cache .mypy_cache .ruff_cache
