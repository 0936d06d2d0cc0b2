"""The HTTP layer: flask-smorest blueprints, schemas, problem+json errors, OpenAPI."""
from __future__ import annotations

import http

from flask import Flask
from flask_smorest import Api as SmorestApi
from flask_smorest.utils import prepare_response

from ..jobs.hints import LoadGauge
from .auth import init_auth
from .caching import init_cache_control
from .fast_poll import FastPolls
from .limits import init_limits
from .links import JobIdConverter
from .long_polls import LongPollSlots
from .openapi import HEADERS, error_response_headers
from .problems import PROBLEM_JSON, ProblemSchema, http_exception_problem, register_problem_handlers
from .url_limit import init_url_limit

# The contract's version, in the document's info.version: bump it with every change a client notices.
API_VERSION = "1.1.0"


class Api(SmorestApi):
    """flask-smorest's Api, answering and documenting every error as problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):
        return http_exception_problem(error)

    def _register_responses(self):
        # The protocol's headers first: the error responses below refer to them.
        for name, header in HEADERS.items():
            self.spec.components.header(name, header, lazy=True)
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
                response["headers"] = error_response_headers(status)
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {
            "description": "Any other error, as problem+json.",
            "schema": self.ERROR_SCHEMA,
            "headers": error_response_headers(500),
        }
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def _register_pagination_header(self):
        """No view uses flask-smorest's pagination: keep its unused schema out of the document."""

    def _register_etag_headers(self):
        """The status endpoint documents its own ETag and If-None-Match (see jobs.py)."""


def register_api(app: Flask) -> Api:
    from . import agents, health, jobs, ops

    app.config.update(
        API_TITLE="AI Jobs API",
        API_VERSION=API_VERSION,
        # 3.1: nullable fields are JSON Schema type unions that generators keep (docs/adr/0002).
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        # Served from the package's own copy: the docs page must work offline on loopback.
        OPENAPI_SWAGGER_UI_URL="/api/docs/assets/",
        API_SPEC_OPTIONS={
            "info": {
                "description": (
                    "Submit AI agent jobs and follow them to the end over plain HTTP polling. "
                    "Every error is application/problem+json (RFC 9457)."
                ),
                "summary": "AI agent jobs over plain HTTP polling.",
                "license": {"name": "MIT", "url": "https://opensource.org/licenses/MIT"},
                "contact": {"name": "AI Jobs maintainers"},
            },
            # Paths are relative to wherever the document is served: local, staging or production.
            "servers": [
                {
                    "url": "/",
                    "description": "This server (local, staging or production: the one serving this document)",
                    "x-internal": False,
                }
            ],
            # Every operation needs the key unless it says otherwise (the health checks do).
            "security": [{"bearerAuth": []}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key."}
                }
            },
        },
    )
    gauge = LoadGauge()
    app.extensions["load_gauge"] = gauge
    app.before_request(gauge.enter)
    app.teardown_request(gauge.leave)
    # Before anything reads the query: an over-long URL answers 414 problem+json.
    init_url_limit(app)
    init_cache_control(app)
    _enable_cors(app)
    # Authentication first: the rate budgets are counted under the authenticated key id.
    init_auth(app)
    init_limits(app)
    config = app.extensions["config"]
    app.extensions["long_poll_slots"] = LongPollSlots(config.redis_url, config.long_polls_per_key)
    app.url_map.converters["job_id"] = JobIdConverter
    api = Api(app)
    register_problem_handlers(app)
    api.register_blueprint(jobs.blp)
    api.register_blueprint(agents.blp)
    api.register_blueprint(health.blp)
    api.register_blueprint(ops.blp)
    # Directly around Flask (inside any middleware added later): a plain poll of a job this
    # process knows is answered from memory without Flask's dispatch (fast_poll.py says why).
    # Not with CORS on: flask-cors adds its headers to every API answer, which only Flask writes.
    if not app.extensions["config"].cors_allowed_origins:
        app.wsgi_app = FastPolls(app)
    return api


def _enable_cors(app: Flask) -> None:
    """Let pages on the configured origins (none by default) call the API from the browser."""
    origins = list(app.extensions["config"].cors_allowed_origins)
    if not origins:
        return
    from flask_cors import CORS

    CORS(
        app,
        # The client's modules too: a page on another origin may import them from this service.
        resources={r"/api/*": {"origins": origins}, r"/client/src/*": {"origins": origins}},
        allow_headers=["Authorization", "Content-Type", "If-None-Match"],
        expose_headers=[
            "ETag", "Retry-After", "Location", "Operation-Location", "Link", "RateLimit", "RateLimit-Policy",
        ],
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
        supports_credentials=False,
    )
