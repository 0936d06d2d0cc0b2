"""The HTTP layer: flask-smorest blueprints, schemas, problem+json errors, OpenAPI."""
from __future__ import annotations

import http

from flask import Flask
from flask_smorest import Api as SmorestApi
from flask_smorest.utils import prepare_response

from ..jobs.hints import LoadGauge
from .limits import init_limits
from .problems import PROBLEM_JSON, ProblemSchema, http_exception_problem, register_problem_handlers


class Api(SmorestApi):
    """flask-smorest's Api, answering and documenting every error as problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):
        return http_exception_problem(error)

    def _register_responses(self):
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def register_api(app: Flask) -> Api:
    from . import agents, health, jobs

    app.config.update(
        API_TITLE="AI Jobs API",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
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
                "license": {"name": "MIT", "url": "https://opensource.org/licenses/MIT"},
            },
            "servers": [{"url": "/", "description": "This server"}],
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
    _enable_cors(app)
    init_limits(app)
    api = Api(app)
    register_problem_handlers(app)
    api.register_blueprint(jobs.blp)
    api.register_blueprint(agents.blp)
    api.register_blueprint(health.blp)
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
        expose_headers=["ETag", "Retry-After", "Location", "Link", "RateLimit", "RateLimit-Policy"],
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
        supports_credentials=False,
    )
