"""Schemathesis over the whole OpenAPI document, in all its phases: no input may produce a 5xx, an
undocumented status, body or header, an accepted invalid input or a refused valid one.

- examples, coverage and fuzzing (``@schema.parametrize()``, every operation): each case is sent
  once with a valid key and once without one, and checked with every Schemathesis check;
- stateful: sequences that follow the document's links (submit -> status, job, cancel, events).

Bounded (a fixed number of fuzzed examples per operation and of stateful scenarios, derandomized) so
it runs in a minute or two, against the real app on PostgreSQL.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import status_code_conformance

from backend import create_app
from backend.api.schemas import JOB_ID_EXAMPLE
from backend.config import Config
from backend.jobs.cursors import encode_cursor
from tests.conftest import make_key

pytestmark = pytest.mark.integration
FUZZED_EXAMPLES = 30
STATEFUL_SCENARIOS = 15
STATEFUL_STEPS = 6


@pytest.fixture
def config(config):
    # Generous limits: this test is about answers, not about being throttled.
    return config.with_overrides(rate_limit_submit="10000/minute", rate_limit_poll="10000/minute",
                                 rate_limit_default="10000/minute", rate_limit_auth_failures="10000/minute")


class _CurrentApp:
    """A WSGI app that forwards to whichever app the running test built (real PostgreSQL)."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


# Every check at its defaults, except one documented exception. An agent validates its own input:
# the agent's name, and rules across fields (echo's steps x delay_ms) that JSON Schema cannot state.
# So a schema-valid submit may rightly answer 422 (unknown_agent, invalid_input); the agents'
# input schemas are published by GET /api/ai/agents.
_CONFIG = SchemathesisConfig.from_str("""
[[operations]]
include-operation-id = "submitJob"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
""")

# The document needs no database; the requests it drives go to the test's real app.
_target = _CurrentApp(create_app(Config(database_url="sqlite://")))
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", _target, config=_CONFIG)


_current = {"key": ""}


@schema.auth(refresh_interval=None)
class _TestKey:
    """The key of the running test's app, as Schemathesis's own auth: its checks then know which
    requests carry valid credentials (and try the operations without them too)."""

    def get(self, case, context):
        return _current["key"]

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture
def fuzz_key(app) -> str:
    _target.app = app
    _current["key"] = make_key(app, "fuzzer")
    return _current["key"]


def _with_a_server_issued_cursor(case) -> None:
    """A list cursor is an opaque token that only the server issues, so no generated value is one:
    a schema-valid case gets a real cursor, negative cases keep their generated garbage."""
    if case.query and "cursor" in case.query and not case.meta.is_negative_at(ParameterLocation.QUERY):
        case.query["cursor"] = encode_cursor(JOB_ID_EXAMPLE)


@schema.parametrize()
@settings(max_examples=FUZZED_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_input_produces_a_server_error_or_breaks_the_documented_contract(case, fuzz_key):
    _with_a_server_issued_cursor(case)
    with_key = case.call()
    case.validate_response(with_key)

    without_key = case.call(headers={"Authorization": ""})
    case.validate_response(without_key, additional_checks=[status_code_conformance])


def test_linked_sequences_of_calls_keep_the_contract(fuzz_key):
    class Sequences(schema.as_state_machine()):
        def before_call(self, case):
            _with_a_server_issued_cursor(case)

    Sequences.run(settings=settings(max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS,
                                    deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)))
