# Two commands set everything up on a fresh machine with Python (and Node.js for the client tests):
#   make run   - the API, an in-process worker and the demo page on the embedded default (SQLite)
#   make test  - the whole suite against real PostgreSQL and Redis (started if installed but stopped)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 5000
CANVAS_STAGE_DELAY_MS ?= 400

.PHONY: run test test-deploy contract openapi test-alerts prometheus-tools bench-tools test-python test-client test-chaos chaos test-e2e e2e bench services venv client-deps clean lock

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
test: test-alerts test-deploy test-python test-client contract test-e2e test-chaos

test-python: venv services prometheus-tools bench-tools
	$(PY) -m pytest --ignore=tests/chaos --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

# Debian's prometheus package (promtool and prometheus), installed if missing, as Chromium is.
prometheus-tools:
	bash tests/ensure-prometheus.sh

# The alert rules: syntax, and unit tests that make each rule fire and stay quiet at its edge.
test-alerts: prometheus-tools
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts.test.yml
	promtool check config deploy/prometheus/prometheus.yml

# The deployment files, offline (these machines have no Docker daemon and no cluster): compose.yaml
# against the Compose Specification's JSON schema, deploy/k8s/ against Kubernetes 1.30's schemas,
# and the Prometheus configuration compose.yaml mounts.
test-deploy: venv prometheus-tools
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	$(VENV)/bin/kubernetes-validate --strict -k 1.30 deploy/k8s/*.yaml
	promtool check config deploy/prometheus/prometheus.compose.yml

client-deps: client/node_modules/.package-lock.json

client/node_modules/.package-lock.json: client/package.json client/package-lock.json
	cd client && npm ci --no-audit --no-fund --loglevel=error

test-client: client-deps
	cd client && npm test && npm run typecheck

# The OpenAPI contract (client/contract/check.sh, about a minute): docs/openapi.json equals the live
# document; openapi-spec-validator, Redocly (recommended) and Spectral (spectral:oas, OWASP) find
# nothing; openapi-python-client and openapi-typescript generate without a warning; a program typed
# by the generated types compiles under `tsc --strict`; @azure/core-lro's generic poller and that
# program drive real jobs on gunicorn and a Dramatiq worker.
contract: venv services client-deps
	PY=$(abspath $(PY)) bash client/contract/check.sh

# Regenerate docs/openapi.json from the app after changing the contract; review the diff.
openapi: venv
	$(PY) scripts/openapi.py write

# Fault injection: each test starts its own PostgreSQL and Redis, gunicorn and dramatiq processes.
test-chaos chaos: venv services
	$(PY) -m pytest tests/chaos -p no:cacheprovider -s $(CHAOS_ARGS)

# Debian's wrk, the benchmark's load generator (a test runs the benchmark in its tiny configuration).
bench-tools:
	bash bench/ensure-wrk.sh

# The service in its production process model against its peers (docs/performance.md); QUICK=1 for
# the short run (under 2 minutes). Not a test: it measures, it does not judge.
bench: venv services bench-tools
	$(PY) bench/run.py $(if $(QUICK),--quick)

# constraints.txt: the exact version of every package the Docker image installs, resolved from
# setup.cfg in a clean temporary virtualenv (needs PyPI and the image's Python minor version).
lock:
	$(PYTHON) scripts/lock.py

clean:
	rm -rf $(VENV) instance .pytest_cache .coverage client/node_modules

# Real-browser end-to-end: Debian's Chromium (installed if missing) drives the demo page against
# gunicorn and a Dramatiq worker on PostgreSQL and Redis.
test-e2e e2e: venv services client-deps
	bash tests/ensure-chromium.sh
	cd client && E2E_PYTHON=$(abspath $(PY)) npm run e2e
