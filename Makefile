# The verbs a newcomer looks for. Everything installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Start Temporal (embedded), every worker pool and the API on http://127.0.0.1:8000; deploy examples/
run: $(STAMP)
	$(BIN)/aimatrix run

## Lint, type-check and run the whole test suite against real Temporal, SQLite and PostgreSQL
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Benchmarks; results land in BENCHMARKS.md
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_engine
	$(BIN)/python -m benchmarks.bench_instances --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

clean:
	rm -rf $(VENV) .aimatrix .pytest_cache .mypy_cache .ruff_cache
