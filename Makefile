# hl7lake — `make up` runs the stack, `make test` runs every test. Both set up ./.venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: up test lint format unit integration e2e bench-parse bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[emulator]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed-run

up: $(VENV)/.installed-run
	$(BIN)/hl7lake up

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest

unit: $(VENV)/.installed-dev
	$(BIN)/pytest tests/unit

integration: $(VENV)/.installed-dev
	$(BIN)/pytest tests/integration

e2e: $(VENV)/.installed-dev
	$(BIN)/pytest tests/e2e

bench-parse: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_parse.py

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_pipeline.py

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache
