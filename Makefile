# Sovereign Orchestrator: two commands set everything up on a fresh machine.
#   make demo   virtualenv + torch==2.13.0 + project, then the sonar job on the embedded default
#   make test   same install, then the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Parsl's HTEX starts interchange.py/process_worker_pool.py through PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo exercise test lint typecheck check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

# Issue 6's three-nation exercise (agreements, approvals, holds, transfers, termination).
exercise: $(STAMP)
	bash workflows/exercise/run.sh

test: $(STAMP)
	$(BIN)/ruff check orchestrator tests workflows benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check orchestrator tests workflows benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	bash benchmarks/run_all.sh

clean:
	rm -rf .sovereign-demo .pytest_cache .mypy_cache .ruff_cache
