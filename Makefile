# Two commands set everything up on a fresh machine with Python (and Node.js for the client tests):
#   make run   - the API, an in-process worker and the demo page on the embedded default (SQLite)
#   make test  - the whole suite against real PostgreSQL and Redis (started if installed but stopped)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 5000
CANVAS_STAGE_DELAY_MS ?= 400

.PHONY: run test test-python test-client bench services venv clean

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

test: test-python test-client

test-python: venv services
	$(PY) -m pytest --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

test-client:
	cd client && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run typecheck

bench: venv services
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) instance .pytest_cache .coverage client/node_modules
