# Two commands set everything up on a fresh machine with Python (and Node.js for the client tests):
#   make run   - the API, an in-process worker and the demo page on the embedded default (SQLite)
#   make test  - the whole suite against real PostgreSQL and Redis (started if installed but stopped)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 5000
CANVAS_STAGE_DELAY_MS ?= 400

.PHONY: run test test-python test-client test-chaos chaos test-e2e e2e bench services venv client-deps clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# REDIS_URL is cleared so `make run` is always the embedded mode, whatever the shell exports.
run: venv
	REDIS_URL= $(VENV)/bin/flask --app wsgi db upgrade
	REDIS_URL= CANVAS_STAGE_DELAY_MS=$(CANVAS_STAGE_DELAY_MS) $(VENV)/bin/flask --app wsgi serve --port $(PORT)

services:
	bash tests/services.sh

# The whole suite: Python (unit, integration on real PostgreSQL/Redis/Dramatiq, embedded mode,
# OpenAPI fuzzing; coverage of backend/ >= 90 %), the JS client, real-browser end-to-end, fault injection.
test: test-python test-client test-e2e test-chaos

test-python: venv services
	$(PY) -m pytest --ignore=tests/chaos --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

client-deps: client/node_modules/.package-lock.json

client/node_modules/.package-lock.json: client/package.json client/package-lock.json
	cd client && npm ci --no-audit --no-fund --loglevel=error

test-client: client-deps
	cd client && npm test && npm run typecheck

# Fault injection: each test starts its own PostgreSQL and Redis, gunicorn and dramatiq processes.
test-chaos chaos: venv services
	$(PY) -m pytest tests/chaos -p no:cacheprovider -s $(CHAOS_ARGS)

bench: venv services
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) instance .pytest_cache .coverage client/node_modules

# Real-browser end-to-end: Debian's Chromium (installed if missing) drives the demo page against
# gunicorn and a Dramatiq worker on PostgreSQL and Redis.
test-e2e e2e: venv services client-deps
	bash tests/ensure-chromium.sh
	cd client && E2E_PYTHON=$(abspath $(PY)) npm run e2e
