# The two front-door commands: `make run` (the service, embedded defaults) and `make test` (every test tier).
# Both are idempotent: the virtualenv and the frontend build are redone only when their inputs change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PIP_FLAGS := --disable-pip-version-check -q -c constraints.txt
FRONTEND_SRC := $(shell find frontend -path frontend/node_modules -prune -o -path frontend/dist -prune -o -path frontend/src/generated -prune -o -type f -print 2>/dev/null)
# The dashboard's API types are generated from the app's OpenAPI schema: redone when the API's
# code (routes, schemas) or the vocabulary it serves changes.
API_SRC := $(shell find api synib_spec -name '*.py' 2>/dev/null)
GENERATED := frontend/src/generated

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

# The dashboard: built into frontend/dist, which the API serves at /. Its TypeScript types are
# generated from the API's OpenAPI schema (frontend/src/generated, not in git). Skipped with a
# note when npm is absent.
ifeq ($(shell command -v npm 2>/dev/null),)
frontend:
	@echo "frontend: npm not found; the dashboard is not built (install nodejs and npm)"
else
frontend: frontend/dist/index.html $(GENERATED)/api.d.ts

frontend/node_modules/.package-lock.json: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error

# The schema of this checkout's API, whichever checkout the virtualenv was installed from.
$(GENERATED)/openapi.json: $(API_SRC) frontend/scripts/write_openapi.py $(VENV)/.installed-run
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(BIN)/python frontend/scripts/write_openapi.py $@

$(GENERATED)/api.d.ts: $(GENERATED)/openapi.json frontend/node_modules/.package-lock.json
	cd frontend && npm run --silent generate

# The types are not part of the bundle: they serve `npm run typecheck` (make test).
frontend/dist/index.html: $(FRONTEND_SRC) frontend/node_modules/.package-lock.json
	cd frontend && npm run --silent build
endif

services:
	@bash .ci/services.sh

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist $(GENERATED) .synib .mypy_cache .ruff_cache .pytest_cache
