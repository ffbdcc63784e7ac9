# hl7lake — `make up` runs the stack, `make test` runs every test. Both set up ./.venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: up test lint audit lock format schema unit integration e2e test-localstack compose-tool browser-tool bench-parse bench-fhir bench bench-gateway soak chaos mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Dependencies come from the lock files (pinned, hashes checked); the project itself is installed on top.
$(VENV)/.installed-run: pyproject.toml requirements/emulator.lock | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements/emulator.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements/dev.lock | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements/dev.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@ $(VENV)/.installed-run

# `make up ARGS=--fresh` starts with an empty lake (the saved state in .run/state is deleted).
up: $(VENV)/.installed-run
	$(BIN)/hl7lake up $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint audit compose-tool browser-tool
	$(BIN)/pytest

# The parsed document's JSON Schema, generated from its type (hub/document.py); a unit test fails while the
# committed file differs from what this writes.
SCHEMA_FILE := docs/schemas/parsed-document.schema.json
schema: $(VENV)/.installed-dev
	@mkdir -p $(dir $(SCHEMA_FILE))
	$(BIN)/python -c "import sys, hub.document as d; sys.stdout.write(d.parsed_document_schema_text())" \
	  > $(SCHEMA_FILE).tmp
	mv $(SCHEMA_FILE).tmp $(SCHEMA_FILE)

# pip-audit against the runtime lock (what the image runs): a known vulnerability fails the build; an
# unreachable vulnerability database prints "NOT audited" and goes on, never a pass.
audit: $(VENV)/.installed-dev
	$(BIN)/python requirements/audit.py requirements/runtime.lock

# Re-resolve the lock files from pyproject.toml for Python 3.11 on every platform, keeping today's pins
# where they still fit; `make lock UPGRADE=1` moves every package to its newest allowed release.
# runtime.lock: the image; emulator.lock: `make up`; dev.lock: `make test`. The last two reuse the
# runtime pins (-c), so every environment runs the same versions.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
	--quiet $(if $(UPGRADE),--upgrade)
lock: $(VENV)/.installed-dev
	$(UV_COMPILE) -o requirements/runtime.lock
	$(UV_COMPILE) --extra emulator -c requirements/runtime.lock -o requirements/emulator.lock
	$(UV_COMPILE) --extra dev --extra emulator -c requirements/runtime.lock -o requirements/dev.lock

# Debian's docker-compose 1.29 validates docker-compose.yml without an engine; the test skips with a
# clear message where it cannot be installed (not root, no apt).
compose-tool:
	@command -v docker-compose >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose) >/dev/null 2>&1; } \
	  || echo "note: docker-compose unavailable; the compose validation test will be skipped"

# Debian's Chromium and its driver for the dashboard's browser test (Selenium is given their paths and
# never downloads a browser); the test skips with a clear message where they cannot be installed.
browser-tool:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] \
	  && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
	  >/dev/null 2>&1; } || echo "note: chromium unavailable; the dashboard browser test will be skipped"

# The integration and end-to-end suites against LocalStack: 4.14.0 in Docker where an engine answers,
# else LocalStack from PyPI as a host process (Python >= 3.13, requirements/localstack.lock) beside moto.
test-localstack: $(VENV)/.installed-dev
	$(BIN)/python tests/localstack_run.py

unit: $(VENV)/.installed-dev
	$(BIN)/pytest tests/unit

integration: $(VENV)/.installed-dev
	$(BIN)/pytest tests/integration

e2e: $(VENV)/.installed-dev
	$(BIN)/pytest tests/e2e

# One-line changes to the core rules (catalog order, dedup claims, S3 keys, read ABAC, token skew), each
# against the unit tests that guard it: prints the surviving mutants and the score. Not part of `make test`.
mutation: $(VENV)/.installed-dev
	$(BIN)/python bench/mutation.py $(ARGS)

bench-parse: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_parse.py

# HL7 v2 -> FHIR R4 Bundles per second on one core (corpus ADT and ORU messages), CPU per message.
bench-fhir: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_fhir.py $(ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_pipeline.py

# The front door alone on one core (in-memory hub and dedup, real RS256 token checks): req/s, p50/p99.
# `make bench-gateway ARGS="--baseline-ref <commit>"` also measures the gateway as it was at <commit>.
bench-gateway: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_gateway.py $(ARGS)

# 10,000 messages (HTTP, MLLP, batch bodies, 10% duplicates, 4 senders), then proof that every
# acknowledged message is in the lake exactly once; `make chaos` also kills each service in turn.
SOAK_MESSAGES ?= 10000
soak: $(VENV)/.installed-dev
	cd bench && ../$(BIN)/python soak.py --messages $(SOAK_MESSAGES) --json ../.run/soak.json

chaos: $(VENV)/.installed-dev
	cd bench && ../$(BIN)/python soak.py --messages 2000 --chaos --chaos-every 15 --json ../.run/chaos.json

# .run holds the services' logs, heartbeats and the emulator's saved state (.run/state, unless
# HL7LAKE_STATE_DIR points elsewhere): after `make clean` the lake starts empty.
clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache
