"""Shared pieces of the OpenAPI document: the protocol's headers, links and examples.

Views reference the headers by name (``headers=headers("ETag", ...)``); the document then lists each
header once under ``components.headers``. Documenting a header does not send it: the views and
after-request hooks do that; tests/integration/test_http_contract.py and Schemathesis check they agree.
"""
from __future__ import annotations

from ..ids import JOB_ID_PATTERN
from .schemas import JOB_ID_EXAMPLE, JOB_ID_LENGTH, MAX_URL_CHARS

_STATUS_URL = f"/api/ai/jobs/{JOB_ID_EXAMPLE}/status"
_HEADER_CHARS = 1024


# Visible ASCII and spaces: what an HTTP field value of this protocol is made of.
_FIELD_VALUE = r"^[\x20-\x7e]*$"


def _string(example: str, *, max_chars: int = _HEADER_CHARS, **extra) -> dict:
    return {"type": "string", "maxLength": max_chars, "example": example, "pattern": _FIELD_VALUE, **extra}


# The response headers of the protocol, by field name (docs/polling.md explains each one).
HEADERS: dict[str, dict] = {
    "Location": {
        "description": "The job's URL (GET it for the full job and, once it succeeded, its result).",
        "schema": _string(f"/api/ai/jobs/{JOB_ID_EXAMPLE}", max_chars=MAX_URL_CHARS, format="uri-reference"),
    },
    "Operation-Location": {
        "description": "The status monitor to poll until the job ends: the job's status URL. Generic "
        "long-running-operation pollers read it, then follow the body's `status`.",
        "schema": _string(_STATUS_URL, max_chars=MAX_URL_CHARS, format="uri-reference"),
    },
    "Retry-After": {
        "description": "Seconds to wait before the next request. On job answers: the poll hint, sent "
        "only while the job is not finished. On 429 and 503: when a retry is worth it.",
        "schema": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 86400, "example": 1},
    },
    "ETag": {
        "description": "The tag of the job's state; send it back in If-None-Match.",
        "schema": _string('"v5"', max_chars=64, pattern=r'^(W/)?"[\x21\x23-\x7e]*"$'),
    },
    "Cache-Control": {
        "description": "How a cache may keep this answer (docs/polling.md lists the policy of each resource).",
        "schema": _string("no-cache", max_chars=200),
    },
    "RateLimit": {
        "description": "What is left of the caller's budget (IETF draft httpapi-ratelimit-headers): "
        "the policy name, r = requests remaining, t = seconds until the window resets.",
        "schema": _string('"poll";r=1195;t=55', max_chars=200),
    },
    "RateLimit-Policy": {
        "description": "The caller's budget for this endpoint: q = requests per window, w = window in seconds.",
        "schema": _string('"poll";q=1200;w=60', max_chars=200),
    },
    "Link": {
        "description": "RFC 8288 links; rel=\"next\" is the next page of the list, absent on the last page.",
        "schema": _string(
            '</api/ai/jobs?limit=20&cursor=job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW>; rel="next"', max_chars=8192
        ),
    },
    "WWW-Authenticate": {
        "description": "The authentication challenge: send 'Authorization: Bearer <key>'.",
        "schema": _string('Bearer realm="ai-jobs", error="invalid_token"', max_chars=200),
    },
}


def headers(*names: str, required: tuple[str, ...] = ()) -> dict[str, dict | str]:
    """Response headers for a decorator: by reference, or inline when the answer always sends them."""
    documented: dict[str, dict | str] = {}
    for name in names:
        if name in required:
            documented[name] = {**HEADERS[name], "required": True}
        else:
            documented[name] = name
    return documented


def job_operation_links(parameter: str = "$response.body#/id") -> dict[str, dict]:
    """OpenAPI links from an answer that names a job to the operations on that job."""
    return {
        name: {"operationId": operation_id, "parameters": {"job_id": parameter}, "description": text}
        for name, operation_id, text in (
            ("GetJobStatus", "getJobStatus", "Poll the job's status."),
            ("GetJob", "getJob", "Read the job in full."),
            ("CancelJob", "cancelJob", "Cancel the job."),
            ("ListJobEvents", "listJobEvents", "Read the job's history."),
        )
    }


JOB_ID_SCHEMA = {
    "type": "string",
    "pattern": JOB_ID_PATTERN,
    "minLength": JOB_ID_LENGTH,
    "maxLength": JOB_ID_LENGTH,
    "example": JOB_ID_EXAMPLE,
    "description": "A job id: job_ followed by 26 upper-case Crockford base-32 characters.",
}

# ---- examples (valid against the schemas: the linters check them) ---------------------------------

_PROGRESS = {"percent": 35.0, "stage": "plan", "message": "Planned 3 shapes"}
JOB_STATUS_EXAMPLE = {
    "id": JOB_ID_EXAMPLE,
    "status": "running",
    "progress": _PROGRESS,
    "version": 5,
    "created_at": "2026-11-27T12:19:28.209986+00:00",
    "started_at": "2026-11-27T12:19:28.218417+00:00",
    "finished_at": None,
    "updated_at": "2026-11-27T12:19:29.738355+00:00",
    "estimated_completion_at": "2026-11-27T12:19:33.284877+00:00",
    "error": None,
    "queue_position": None,
    "poll_after_ms": 500,
}
_LINKS = {
    "self": f"/api/ai/jobs/{JOB_ID_EXAMPLE}",
    "status": f"/api/ai/jobs/{JOB_ID_EXAMPLE}/status",
    "cancel": f"/api/ai/jobs/{JOB_ID_EXAMPLE}/cancel",
    "events": f"/api/ai/jobs/{JOB_ID_EXAMPLE}/events",
}
QUEUED_JOB_EXAMPLE = {
    **JOB_STATUS_EXAMPLE,
    "status": "queued",
    "progress": {"percent": 0.0, "stage": None, "message": None},
    "version": 1,
    "started_at": None,
    "updated_at": "2026-11-27T12:19:28.209986+00:00",
    "estimated_completion_at": None,
    "queue_position": 0,
    "poll_after_ms": 2000,
    "agent": "canvas",
    "input": {"prompt": "three red circles in a row"},
    "request_id": "order-1234:render",
    "result": None,
    "attempts": 0,
    "cancel_requested_at": None,
    "heartbeat_at": None,
    "next_attempt_at": None,
    "links": _LINKS,
}
SUCCEEDED_JOB_EXAMPLE = {
    **QUEUED_JOB_EXAMPLE,
    "status": "succeeded",
    "progress": {"percent": 100.0, "stage": "done", "message": "Drew 3 shapes"},
    "version": 7,
    "started_at": "2026-11-27T12:19:28.218417+00:00",
    "finished_at": "2026-11-27T12:19:31.902114+00:00",
    "updated_at": "2026-11-27T12:19:31.902114+00:00",
    "queue_position": None,
    "poll_after_ms": None,
    "result": {"svg": "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"300\" height=\"100\"></svg>"},
    "attempts": 1,
    "heartbeat_at": "2026-11-27T12:19:31.100000+00:00",
}
CANCELLING_JOB_EXAMPLE = {
    **QUEUED_JOB_EXAMPLE,
    "status": "running",
    "progress": _PROGRESS,
    "version": 4,
    "started_at": "2026-11-27T12:19:28.218417+00:00",
    "queue_position": None,
    "poll_after_ms": 500,
    "attempts": 1,
    "cancel_requested_at": "2026-11-27T12:19:29.500000+00:00",
    "heartbeat_at": "2026-11-27T12:19:29.100000+00:00",
}

# ---- error responses ------------------------------------------------------------------------------

RATE_LIMIT_HEADERS = ("RateLimit", "RateLimit-Policy")
# Every /api/ai operation can refuse a key (401; 403 for an ops key), be rate limited, meet an over-long URL, fail
# unexpectedly or find the database down.
API_ERRORS = (401, 403, 414, 429, 500, 503)
# Any route can meet an over-long URL or fail unexpectedly.
ANY_ROUTE_ERRORS = (414, 500)


def error_response_headers(status: int) -> dict[str, dict | str]:
    """The headers a problem+json answer of ``status`` carries (components.responses)."""
    names = ["Cache-Control", *RATE_LIMIT_HEADERS]
    required = ["Cache-Control"]
    if status == 401:
        names.append("WWW-Authenticate")
        required.append("WWW-Authenticate")
    if status == 429:
        names.append("Retry-After")
        required.append("Retry-After")
    if status == 503:
        names.append("Retry-After")
    return headers(*names, required=tuple(required))


def documents_errors(blp, *statuses: int, always: tuple[int, ...] = API_ERRORS):
    """Document the problem+json answers a view can give, by reference to components.responses."""
    from http import HTTPStatus

    def decorate(view):
        for status in sorted(set(statuses) | set(always)):
            view = blp.alt_response(status, response=HTTPStatus(status).name)(view)
        return view

    return decorate
