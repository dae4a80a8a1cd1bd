# SageServe planner: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= ../shared
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false

.PHONY: demo test test-fast lint typecheck deadcode check bench serve clean install

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed, found " + sys.version' 
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## The main job end to end on built-in sample data.
demo: $(STAMP)
	$(BIN)/sageserve demo --shared $(SHARED)

# Two pytest-xdist workers, whole modules each, in collection order (the slow modules first:
# tests/conftest.py); many slow tests mostly wait on servers, subprocesses and clocks.
XDIST := -n 2 --dist loadfile --no-loadscope-reorder

## Lint, types, architecture contract, then the test suite (browser and server tests included).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy planner flows validation reports bench
	$(BIN)/lint-imports
	$(BIN)/vulture
	$(BIN)/python -m pytest -q $(XDIST)

## Tests without the slow marker, for the edit loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow and not browser and not prefect_server"

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy planner flows validation reports bench

## Dead code: names nothing uses (settings in pyproject.toml, the rest in vulture_whitelist.py).
deadcode: $(STAMP)
	$(BIN)/vulture

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/forecast.py
	$(BIN)/python bench/ilp_scale.py --only sageserve
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/hourly.py

## A local Prefect server with the deployments and a worker: UI at http://127.0.0.1:4200.
serve: $(STAMP)
	$(BIN)/python -m flows.serve

clean:
	rm -rf .sageserve out .pytest_cache .mypy_cache .ruff_cache
