"""Job endpoints: submit, list, details, status, cancel, history."""
from __future__ import annotations

import re
from contextlib import nullcontext
from urllib.parse import urlencode

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint

from ..extensions import db
from ..ids import is_job_id
from ..jobs.errors import MalformedJobId
from ..jobs.hints import retry_after_s
from ..jobs.service import JobService
from ..jobs.status import JobStatus
from ..models import Job
from .auth import current_owner, require_api_key
from .links import job_url
from .problems import problem
from .schemas import (
    STATUS_HEADERS,
    BatchStatusRequestSchema,
    BatchStatusSchema,
    ConditionalHeadersSchema,
    EventListSchema,
    EventsArgsSchema,
    JobListArgsSchema,
    JobListSchema,
    JobSchema,
    JobStatusSchema,
    SubmitJobSchema,
    WaitArgsSchema,
    poll_hint_ms,
)

blp = Blueprint(
    "jobs",
    __name__,
    url_prefix="/api/ai/jobs",
    description="Submit AI agent jobs and follow them by polling.",
)
blp.before_request(require_api_key)

_JSON_TYPES = ("application/json",)
# Deep enough for any honest input; shallow enough that no parser or schema recurses too far.
MAX_JSON_DEPTH = 32


@blp.before_request
def _require_json_body():
    """Bodies must be JSON (415 otherwise); an empty body is fine where none is needed."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return None
    has_body = (request.content_length or 0) > 0 or "chunked" in request.headers.get("Transfer-Encoding", "")
    if not has_body and not request.mimetype:
        return None
    if request.mimetype not in _JSON_TYPES and not request.mimetype.endswith("+json"):
        return problem(
            415,
            f"Send the body as application/json, not {request.mimetype or 'an unlabelled body'}.",
        )
    depth = json_depth(request.get_data(cache=True))  # over the size limit this raises 413 first
    if depth > MAX_JSON_DEPTH:
        return problem(
            400,
            f"The JSON body is nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted.",
            code="json_too_deep",
        )
    return None


# Escapes, quotes and brackets: the only bytes that matter for nesting. One linear pass, no
# backtracking, whatever the input (a regex for whole strings goes quadratic on unclosed quotes).
_JSON_TOKEN = re.compile(rb'\\.|["\[\]{}]', re.DOTALL)


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects, found without parsing (so without recursion)."""
    depth = deepest = 0
    in_string = False
    for match in _JSON_TOKEN.finditer(raw):
        token = match.group()
        if token == b'"':
            in_string = not in_string
        elif in_string or len(token) == 2:
            continue
        elif token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _service() -> JobService:
    return current_app.extensions["job_service"]


def _owned_job(job_id: str) -> Job:
    """Fetch-or-404, after rejecting a malformed id with 400."""
    _check_job_id(job_id)
    return _service().get(current_owner(), job_id)


def _check_job_id(job_id: str) -> None:
    if not is_job_id(job_id):
        raise MalformedJobId(
            f"{job_id[:64]!r} is not a job id; job ids look like job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW "
            "(job_ followed by 26 Crockford base-32 characters)."
        )


_ERRORS = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    409: "CONFLICT",
    413: "REQUEST_ENTITY_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE_ENTITY",
    429: "TOO_MANY_REQUESTS",
    503: "SERVICE_UNAVAILABLE",
}
# Every job endpoint can refuse a key, be rate limited, or find the database down.
_ALWAYS = (401, 429, 503)


def _documents(*statuses: int):
    """Document the error responses a view can give (all problem+json)."""

    def decorate(view):
        for status in sorted(set(statuses) | set(_ALWAYS)):
            view = blp.alt_response(status, response=_ERRORS[status])(view)
        return view

    return decorate


@blp.route("")
class Jobs(MethodView):
    @blp.arguments(JobListArgsSchema, location="query", as_kwargs=True)
    @blp.response(200, JobListSchema)
    @_documents(400, 422)
    def get(self, **filters):
        """List your jobs, newest first"""
        jobs, next_cursor = _service().list(current_owner(), **filters)
        headers = {}
        if next_cursor is not None:
            query = dict(request.args, cursor=next_cursor)
            headers["Link"] = f'<{request.path}?{urlencode(query)}>; rel="next"'
        return {"jobs": jobs, "next_cursor": next_cursor}, 200, headers

    @blp.arguments(SubmitJobSchema)
    @blp.response(202, JobSchema)
    @blp.alt_response(200, schema=JobSchema, description="The request_id was seen before with this body: the existing job.")
    @_documents(400, 409, 413, 415, 422)
    def post(self, body):
        """Submit a job"""
        job, created = _service().submit(
            current_owner(), body["agent"], body["input"], body.get("request_id")
        )
        headers = {"Location": job_url(job.id)}
        hint = retry_after_s(poll_hint_ms(job))
        if hint is not None:
            headers["Retry-After"] = hint
        return job, 202 if created else 200, headers


@blp.route("/<job_id>")
class JobDetails(MethodView):
    @blp.response(200, JobSchema)
    @_documents(400, 404)
    def get(self, job_id):
        """Get a job in full: input, result, error, progress, timestamps"""
        return _owned_job(job_id)


@blp.route("/<job_id>/status")
class JobStatusView(MethodView):
    @blp.arguments(WaitArgsSchema, location="query", as_kwargs=True)
    @blp.arguments(ConditionalHeadersSchema, location="headers", as_kwargs=True)
    @blp.response(200, JobStatusSchema, headers=STATUS_HEADERS)
    @blp.alt_response(304, description="Not Modified: the job's ETag still matches If-None-Match.")
    @_documents(400, 404, 422)
    def get(self, job_id, wait, if_none_match):
        """Get a job's compact status (the endpoint to poll; conditional, optionally long-polled)"""
        _check_job_id(job_id)
        service, owner = _service(), current_owner()
        presented = if_none_match
        waiting = wait > 0 and presented is not None
        with service.notifier.listen([job_id]) if waiting else nullcontext() as changed:
            job, tag = _status_and_tag(service, owner, job_id)
            if waiting and _matches(presented, tag) and not JobStatus(job.status).is_terminal:
                _wait_without_database(changed, wait)
                job, tag = _status_and_tag(service, owner, job_id)
        headers = _status_headers(job, tag)
        if presented is not None and _matches(presented, tag):
            return Response(status=304, headers=headers)
        return job, 200, headers


@blp.route("/statuses")
class JobStatuses(MethodView):
    @blp.arguments(BatchStatusRequestSchema)
    @blp.arguments(WaitArgsSchema, location="query", as_kwargs=True)
    @blp.response(200, BatchStatusSchema)
    @_documents(400, 413, 415, 422)
    def post(self, body, wait):
        """Poll many jobs at once: only the ones whose version changed come back in full"""
        service, owner = _service(), current_owner()
        ids = list(dict.fromkeys(body["ids"]))  # de-duplicated, order kept
        versions = body["versions"]
        with service.notifier.listen(ids) if wait > 0 else nullcontext() as changed:
            answer = _batch(service, owner, ids, versions)
            if wait > 0 and not answer["jobs"] and answer["poll_after_ms"] is not None:
                _wait_without_database(changed, wait)
                answer = _batch(service, owner, ids, versions)
        return answer


def _status_and_tag(service: JobService, owner: str, job_id: str) -> tuple[Job, str]:
    job = service.get(owner, job_id)
    if job.status == JobStatus.QUEUED.value:
        job.queue_position = service.queue_position(job_id)
    return job, status_etag(job)


def status_etag(job: Job) -> str:
    """A strong tag of the job's state: its version, plus its place in the queue while queued."""
    if job.queue_position is not None:
        return f'"v{job.version}.q{job.queue_position}"'
    return f'"v{job.version}"'


def _matches(presented: str, tag: str) -> bool:
    if presented.strip() == "*":
        return True
    return tag in {candidate.strip().removeprefix("W/") for candidate in presented.split(",")}


def _status_headers(job: Job, tag: str) -> dict[str, str]:
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    hint = retry_after_s(poll_hint_ms(job))
    if hint is not None:
        headers["Retry-After"] = hint
    return headers


def _wait_without_database(changed, wait_s: int) -> None:
    """Give the database connection back, then sleep until a change is signalled or time is up."""
    db.session.remove()
    gauge = current_app.extensions["load_gauge"]
    gauge.leave()  # a parked long poll costs a thread, not work: it does not count as load
    try:
        changed.wait(wait_s)
    finally:
        gauge.enter()


def _batch(service: JobService, owner: str, ids: list[str], versions: dict[str, int]) -> dict:
    jobs = service.get_many(owner, ids)
    positions = service.queue_positions([i for i, j in jobs.items() if j.status == JobStatus.QUEUED.value])
    changed, unchanged, not_found, hints = [], [], [], []
    for job_id in ids:
        job = jobs.get(job_id)
        if job is None:
            not_found.append(job_id)
            continue
        job.queue_position = positions.get(job_id)
        hint = poll_hint_ms(job)
        if hint is not None:
            hints.append(hint)
        if versions.get(job_id) == job.version:
            unchanged.append(job_id)
        else:
            changed.append(job)
    return {
        "jobs": changed,
        "unchanged": unchanged,
        "not_found": not_found,
        "poll_after_ms": min(hints) if hints else None,
    }


@blp.route("/<job_id>/cancel")
class JobCancel(MethodView):
    @blp.response(202, JobSchema)
    @_documents(400, 404, 409, 415)
    def post(self, job_id):
        """Cancel a job (a running job stops at its next checkpoint)"""
        _check_job_id(job_id)
        return _service().cancel(current_owner(), job_id)


@blp.route("/<job_id>/events")
class JobEvents(MethodView):
    @blp.arguments(EventsArgsSchema, location="query", as_kwargs=True)
    @blp.response(200, EventListSchema)
    @_documents(400, 404, 422)
    def get(self, job_id, after):
        """Get a job's status history, oldest first"""
        _check_job_id(job_id)
        return {"events": _service().events(current_owner(), job_id, after)}
