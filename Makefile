# The two front-door commands: `make run` (the service, embedded defaults) and `make test` (every test tier).
# Both are idempotent: the virtualenv and the frontend build are redone only when their inputs change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PIP_FLAGS := --disable-pip-version-check -q -c constraints.txt
FRONTEND_SRC := $(shell find frontend -path frontend/node_modules -prune -o -path frontend/dist -prune -o -type f -print 2>/dev/null)

.PHONY: run test lint typecheck unit install install-dev frontend services clean

run: $(VENV)/.installed-run frontend
	$(BIN)/synib serve

# services.sh prints the servers' URLs as export lines (its failure, with its message, stops
# here); the private servers it may start are stopped when the recipe ends, however it ends.
test: $(VENV)/.installed-dev frontend
	@exports=$$(bash .ci/services.sh) || exit $$?; eval "$$exports"; \
	  trap 'bash .ci/services.sh stop $$SYNIB_TEST_SERVICE_DIRS' EXIT; trap 'exit 130' INT TERM; \
	  $(BIN)/ruff check . && \
	  $(BIN)/ruff format --check . && \
	  $(BIN)/mypy && \
	  { [ ! -d frontend/node_modules ] || (cd frontend && npm run --silent typecheck); } && \
	  $(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q --upgrade pip

$(VENV)/.installed-run: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install $(PIP_FLAGS) -e '.[worker]'
	@touch $@

$(VENV)/.installed-dev: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install $(PIP_FLAGS) -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

# The dashboard: built into frontend/dist, which the API serves at /. Skipped with a note when npm is absent.
frontend: frontend/dist/index.html

frontend/dist/index.html: $(FRONTEND_SRC)
	@if [ ! -f frontend/package.json ]; then echo "frontend: no package.json yet, skipping"; \
	elif ! command -v npm >/dev/null; then echo "frontend: npm not found; the dashboard is not built (install nodejs and npm)"; \
	else cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent; fi

services:
	@bash .ci/services.sh

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist .synib .mypy_cache .ruff_cache .pytest_cache
