"""Schemathesis over the whole OpenAPI document: no input may produce a 5xx or an undocumented body.

Bounded (a fixed number of examples per operation, derandomized) so it runs in seconds, against the
real app on PostgreSQL, each example sent once with a valid key and once without one.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend import create_app
from backend.config import Config
from tests.conftest import make_key

pytestmark = pytest.mark.integration
CHECKS = (not_a_server_error, response_schema_conformance, content_type_conformance)


@pytest.fixture
def config(config):
    # Generous limits: this test is about answers, not about being throttled.
    return config.with_overrides(rate_limit_submit="10000/minute", rate_limit_poll="10000/minute",
                                 rate_limit_default="10000/minute")


class _CurrentApp:
    """A WSGI app that forwards to whichever app the running test built (real PostgreSQL)."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


# The document needs no database; the requests it drives go to the test's real app.
_target = _CurrentApp(create_app(Config(database_url="sqlite://")))
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", _target)


@pytest.fixture
def fuzz_key(app) -> str:
    _target.app = app
    return make_key(app, "fuzzer")


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_input_produces_a_server_error_or_breaks_the_documented_schema(case, fuzz_key):
    key = fuzz_key
    with_key = case.call(headers={"Authorization": f"Bearer {key}"})
    case.validate_response(with_key, checks=CHECKS)

    without_key = case.call(headers={"Authorization": ""})
    case.validate_response(without_key, checks=CHECKS + (status_code_conformance,))
