# mlrec: the only entry points CI and people need. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

.PHONY: install run test unit lint format bench lock services-up services-down services-status clean

install: $(VENV)/.installed ## Create .venv with mlrec and everything its services and tests need.

$(VENV)/.installed: pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "make install: $(PYTHON) not found; install Python 3.11+ (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "make install: needs Python 3.11+, $(PYTHON) is $$($(PYTHON) -V 2>&1)" >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv; ensurepip.version()' >/dev/null 2>&1 || { echo "make install: $(PYTHON) cannot create a virtualenv (no ensurepip); on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python --no-deps -e .
	touch $@

lock: ## Re-resolve pinned dependencies after editing pyproject.toml.
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

run: install ## Train on the demo data (evaluation table), publish the best model, serve the API on :8000.
	$(BIN)/mlrec up

lint: install ## ruff, mypy --strict, import-linter layer contracts.
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

test: install lint ## The whole suite: lint, unit, integration against real servers (started if needed).
	scripts/with-services.sh $(BIN)/pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

unit: install ## Unit tests only: fast, offline, no servers.
	$(BIN)/pytest tests/unit

bench: install ## Benchmarks; each prints its figures beside its baseline and one summary line.
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/ann.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/freshness.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/loss.py

services-up:
	scripts/services.sh up

services-down:
	scripts/services.sh down

services-status:
	scripts/services.sh status

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
