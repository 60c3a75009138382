# One task runner for humans, the README and CI. Every target bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Prefect keeps its state project-local (not ~/.prefect) and stays offline.
export PREFECT_HOME ?= $(CURDIR)/.nightbatch/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export PREFECT_LOGGING_LEVEL ?= WARNING

.PHONY: run test lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: the main job end to end on embedded defaults (SQLite, local folder, emulator without a key)
run: $(STAMP)
	@mkdir -p $(PREFECT_HOME)
	$(BIN)/nightbatch demo $(ARGS)

## test: lint, type-check and the whole test suite
test: $(STAMP) lint
	@mkdir -p $(PREFECT_HOME)  # Prefect creates its home's last folder only, and warns otherwise
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests flows examples deployments benchmarks
	$(BIN)/ruff format --check src tests flows examples deployments benchmarks
	$(BIN)/mypy src flows

format: $(STAMP)
	$(BIN)/ruff format src tests flows examples deployments benchmarks
	$(BIN)/ruff check --fix src tests flows examples deployments benchmarks

bench: $(STAMP)
	@mkdir -p $(PREFECT_HOME)
	$(BIN)/python -m benchmarks

clean:
	rm -rf .nightbatch .pytest_cache .mypy_cache .ruff_cache
