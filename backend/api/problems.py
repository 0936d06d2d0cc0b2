"""The one error shape on the wire: RFC 9457 ``application/problem+json``."""
from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import marshmallow as ma
from flask import Flask, Response, current_app, json, request
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from ..jobs import errors
from .limits import RateLimitExceeded, rate_limited_detail

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Domain errors of the job service and the HTTP status each one means.
DOMAIN_STATUS: dict[type[errors.JobServiceError], tuple[int, str]] = {
    errors.MalformedJobId: (400, "malformed_job_id"),
    errors.JobNotFound: (404, "job_not_found"),
    errors.RequestIdConflict: (409, "request_id_conflict"),
    errors.JobAlreadyFinished: (409, "job_already_finished"),
    errors.UnknownAgent: (422, "unknown_agent"),
    errors.InvalidJobInput: (422, "invalid_input"),
    errors.InvalidCursor: (400, "invalid_cursor"),
}

# Default problem codes for plain HTTP errors (werkzeug's and ours).
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ProblemSchema(ma.Schema):
    """An RFC 9457 problem document, with the extension members this service sends.

    Other members may be added later (RFC 9457 lets problem types extend the document), so clients
    must ignore members they do not know.
    """

    class Meta:
        # Rendered as additionalProperties: true; the order keeps the standard members first.
        unknown = ma.INCLUDE
        ordered = True

    type = ma.fields.String(
        required=True,
        metadata={
            "description": "A URI reference naming the problem type.",
            "example": "about:blank",
            "format": "uri-reference",
            "maxLength": 2048,
        },
    )
    title = ma.fields.String(
        required=True,
        metadata={"description": "The HTTP status phrase.", "example": "Not Found", "maxLength": 200},
    )
    status = ma.fields.Integer(
        required=True,
        metadata={
            "description": "The HTTP status code.",
            "example": 404,
            "format": "int32",
            "minimum": 400,
            "maximum": 599,
        },
    )
    detail = ma.fields.String(
        required=True,
        metadata={
            "description": "What went wrong and what to do about it, for a human.",
            "example": "No job with this id belongs to you.",
            "maxLength": 10_000,
        },
    )
    instance = ma.fields.String(
        required=True,
        metadata={
            "description": "The request path that failed.",
            "example": "/api/ai/jobs/job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW",
            "format": "uri-reference",
            "maxLength": 8192,
        },
    )
    code = ma.fields.String(
        required=True,
        metadata={
            "description": "A stable machine-readable problem code: branch on this, not on the detail.",
            "example": "job_not_found",
            "pattern": "^[a-z][a-z0-9_]*$",
            "maxLength": 64,
        },
    )
    errors = ma.fields.Dict(
        metadata={
            "description": "Validation messages by location, then field (422 and some 400s), e.g. "
            '{"json": {"input": {"prompt": ["Missing data for required field."]}}}.',
            "example": {"json": {"input": {"prompt": ["Missing data for required field."]}}},
        }
    )
    job_id = ma.fields.String(
        metadata={
            "description": "The job the problem is about, when it is not the one in the URL "
            "(request_id_conflict names the job that holds the request_id).",
            "pattern": r"^job_[0-9A-HJKMNP-TV-Z]{26}$",
            "maxLength": 30,
            "example": "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW",
        }
    )


def problem(
    status: int,
    detail: str | None = None,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """Build a problem+json response."""
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": phrase,
        "status": status,
        "detail": detail or phrase,
        "instance": _instance(),
        "code": code or _HTTP_CODES.get(status, "error"),
    }
    body.update({k: v for k, v in extensions.items() if v is not None})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


# RFC 3986 pchar characters and "/": everything else in a path is percent-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def _instance() -> str:
    """The request path as a URI reference (percent-encoded, as the document's format promises)."""
    return quote(request.path, safe=_PATH_SAFE)


def _detail_of(error: HTTPException) -> str:
    data = getattr(error, "data", None) or {}
    if "message" in data:
        return str(data["message"])
    return error.description or HTTPStatus(error.code or 500).phrase


def http_exception_problem(error: HTTPException) -> Response:
    """werkzeug and flask-smorest errors (including webargs validation) as problem+json."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("errors") or data.get("messages")
    headers = dict(data.get("headers") or {})
    # Keep what the exception says about itself, e.g. the Allow header of a 405.
    headers.update({k: v for k, v in error.get_headers() if k.lower() != "content-type"})
    detail = _detail_of(error)
    if isinstance(error, RateLimitExceeded):
        detail = rate_limited_detail(error)
    elif status == 422 and messages:
        detail = "The request does not match the schema: " + _summarise(messages)
    elif status == 400 and messages and "json" in messages:
        detail = "The request body is not valid JSON."
        messages = None
    elif status == 413:
        detail = _body_too_large_detail()
    return problem(status, detail, code=data.get("code"), headers=headers, errors=messages)


def _body_too_large_detail() -> str:
    """Werkzeug's 413 text names no number; say what the limit is, so the caller can get under it."""
    limit_bytes = current_app.config["MAX_CONTENT_LENGTH"]
    sent = f" of {request.content_length} bytes" if request.content_length else ""
    return (
        f"The request body{sent} is over this service's limit of {limit_bytes} bytes "
        "(MAX_BODY_BYTES); send a smaller body."
    )


def _summarise(messages: dict[str, Any], prefix: str = "") -> str:
    """Name every failing field, e.g. 'json.input.prompt: Missing data for required field.'"""
    parts: list[str] = []
    for key, value in messages.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            parts.append(_summarise(value, path + "."))
        else:
            texts = value if isinstance(value, list) else [value]
            parts.append(f"{path}: {' '.join(str(t) for t in texts)}")
    return "; ".join(parts)


def register_problem_handlers(app: Flask) -> None:
    @app.errorhandler(errors.JobServiceError)
    def _domain_error(error: errors.JobServiceError):
        status, code = DOMAIN_STATUS.get(type(error), (400, "bad_request"))
        extra = dict(error.extra)
        detail = error.detail
        if "errors" in extra and status == 422:
            detail = f"{detail} {_summarise(extra['errors'])}"
        return problem(status, detail, code=code, **extra)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeoutError)
    def _database_unavailable(error: SQLAlchemyError):
        cause = getattr(error, "orig", None)
        log.error("database unavailable: %s", type(cause or error).__name__)
        _rollback_quietly()
        return problem(
            503,
            "The job database is unavailable; retry shortly.",
            code="database_unavailable",
            headers={"Retry-After": "5"},
        )

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return http_exception_problem(error)
        log.exception("unhandled error on %s %s", request.method, request.path)
        if isinstance(error, SQLAlchemyError):
            _rollback_quietly()
        return problem(500, "An unexpected error occurred; it has been logged.")


def _rollback_quietly() -> None:
    from ..extensions import db

    try:
        db.session.rollback()
    except SQLAlchemyError:
        log.warning("rollback failed while the database is unavailable")
