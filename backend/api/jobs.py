"""Job endpoints: submit, list, details, status, cancel, history."""
from __future__ import annotations

import json
import re
from contextlib import nullcontext
from urllib.parse import urlencode

from flask import Response, current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from .. import telemetry
from ..extensions import db
from ..ids import is_job_id
from ..jobs.errors import MalformedJobId
from ..jobs.hints import retry_after_s
from ..jobs.service import JobService
from ..jobs.status import JobStatus
from ..models import Job
from .arguments import batch_arguments, status_arguments, submit_arguments
from .auth import current_key_id, current_owner, protect
from .limits import charge_full_answer
from .links import job_links, job_url, status_url
from .openapi import (
    CANCELLING_JOB_EXAMPLE,
    JOB_ID_SCHEMA,
    JOB_STATUS_EXAMPLE,
    QUEUED_JOB_EXAMPLE,
    RATE_LIMIT_HEADERS,
    SUCCEEDED_JOB_EXAMPLE,
    documents_errors,
    headers,
    job_operation_links,
)
from .problems import problem
from .status_tags import matches_tag, newest_version, status_etag
from .schemas import (
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
protect(blp)

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


def _documented_only(arguments):
    """flask-smorest's ``@blp.arguments`` for the OpenAPI document, without its parsing per request:
    for the poll, the hot path, which reads its two arguments itself (``arguments.status_arguments``)."""

    def decorator(view):
        parsing = arguments(view)
        return parsing.__wrapped__  # under webargs' parsing wrapper: flask-smorest's, with the document

    return decorator


def _check_job_id(job_id: str) -> None:
    if not is_job_id(job_id):
        hint = ""
        # An id whose case was changed on the way (a lower-casing tool, a URL typed by hand): say so.
        candidate = "job_" + job_id[4:].upper()
        if job_id[:4].lower() == "job_" and is_job_id(candidate):
            hint = f" Job ids are upper case after a lower-case job_: did you mean {candidate}?"
        raise MalformedJobId(
            f"{job_id[:64]!r} is not a job id; job ids look like job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW "
            f"(job_ followed by 26 Crockford base-32 characters).{hint}"
        )


def _documents(*statuses: int):
    """Document the problem+json answers a job view can give (401, 414, 429, 500, 503 always)."""
    return documents_errors(blp, *statuses)


# Sent with every job answer; the status endpoint adds its ETag and poll hint.
_JOB_HEADERS = headers("Cache-Control", *RATE_LIMIT_HEADERS, required=("Cache-Control",))
_ACCEPTED_HEADERS = headers(
    "Location", "Operation-Location", "Retry-After", "Cache-Control", *RATE_LIMIT_HEADERS,
    required=("Location", "Operation-Location", "Cache-Control"),
)
_STATUS_HEADERS = headers(
    "ETag", "Retry-After", "Cache-Control", *RATE_LIMIT_HEADERS, required=("ETag", "Cache-Control")
)
# The job_id path parameter, documented once per route.
_JOB_ID_PARAMETER = [{"in": "path", "name": "job_id", "required": True, "schema": JOB_ID_SCHEMA,
                      "description": "The job's id, as the submit answer gave it."}]


def _accepted_job(job: Job) -> dict:
    """What JobSchema dumps of a job just created: queued, never run (a test pins this)."""
    return {
        "id": job.id,
        "status": job.status,
        "progress": {"percent": job.progress_percent, "stage": None, "message": None},
        "version": job.version,
        "created_at": job.created_at.isoformat(),
        "started_at": None,
        "finished_at": None,
        "updated_at": job.updated_at.isoformat(),
        "estimated_completion_at": None,
        "error": None,
        "queue_position": None,
        "poll_after_ms": poll_hint_ms(job),
        "agent": job.agent,
        "input": job.input,
        "request_id": job.request_id,
        "result": None,
        "attempts": job.attempts,
        "cancel_requested_at": None,
        "heartbeat_at": None,
        "next_attempt_at": None,
        "links": job_links(job.id),
    }


def accepted_headers(job: Job) -> dict[str, str]:
    """A 202's headers: the job (Location), its status monitor (Operation-Location), the poll hint."""
    sent = {"Location": job_url(job.id), "Operation-Location": status_url(job.id)}
    hint = retry_after_s(poll_hint_ms(job))
    if hint is not None:
        sent["Retry-After"] = hint
    return sent


@blp.route("")
class Jobs(MethodView):
    @blp.doc(operationId="listJobs")
    @blp.arguments(JobListArgsSchema, location="query", as_kwargs=True)
    @blp.response(
        200, JobListSchema, headers={**_JOB_HEADERS, **headers("Link")},
        example={"jobs": [SUCCEEDED_JOB_EXAMPLE], "next_cursor": None},
    )
    @_documents(400, 422)
    def get(self, **filters):
        """List your jobs, newest first

        Filter by status, agent or request_id. Pages hold up to `limit` jobs; while more remain, the
        answer has a `next_cursor` and a `Link: <...>; rel="next"` header naming the next page.
        """
        jobs, next_cursor = _service().list(current_owner(), **filters)
        headers = {}
        if next_cursor is not None:
            query = dict(request.args, cursor=next_cursor)
            headers["Link"] = f'<{request.path}?{urlencode(query)}>; rel="next"'
        return {"jobs": jobs, "next_cursor": next_cursor}, 200, headers

    @blp.doc(operationId="submitJob", responses={
        202: {"links": job_operation_links()}, 200: {"links": job_operation_links()}})
    @_documented_only(blp.arguments(
        SubmitJobSchema,
        example={"agent": "canvas", "input": {"prompt": "three red circles in a row"}, "request_id": "order-1234:render"},
    ))
    @blp.response(
        202, JobSchema, description="Accepted: the job is queued. Poll Operation-Location until it ends.",
        headers=_ACCEPTED_HEADERS, example=QUEUED_JOB_EXAMPLE,
    )
    @blp.alt_response(
        200, schema=JobSchema, headers=_ACCEPTED_HEADERS, example=SUCCEEDED_JOB_EXAMPLE,
        description="The request_id was seen before with this body: the existing job, in its current state.",
    )
    @_documents(400, 409, 413, 415, 422)
    def post(self):
        """Submit a job

        Queue a job for an agent and answer 202 at once, before it runs. `Operation-Location` names the
        status to poll (honour `Retry-After`), `Location` the job, whose result is there once it
        succeeded. With a `request_id`, resubmitting the same body answers 200 with the first job.
        """
        body = submit_arguments()
        job, created = _service().submit(
            current_owner(), body["agent"], body["input"], body.get("request_id")
        )
        if not created:
            return job, 200, accepted_headers(job)  # a replay, of a job in any state: the schema dumps it
        telemetry.job_submitted(job)
        # Built by hand, not by JobSchema: submits are the other hot path, and a test pins the two
        # equal, byte for byte.
        return jsonify(_accepted_job(job)), 202, accepted_headers(job)


@blp.route("/<job_id:job_id>", parameters=_JOB_ID_PARAMETER)
class JobDetails(MethodView):
    @blp.doc(operationId="getJob")
    @blp.response(200, JobSchema, headers=_JOB_HEADERS, example=SUCCEEDED_JOB_EXAMPLE)
    @_documents(400, 404)
    def get(self, job_id):
        """Get a job in full

        The input, result, error, progress and timestamps. Poll the status endpoint instead while the
        job runs: it is cheaper and conditional.
        """
        return _owned_job(job_id)


@blp.route("/<job_id:job_id>/status", parameters=_JOB_ID_PARAMETER)
class JobStatusView(MethodView):
    @blp.doc(operationId="getJobStatus")
    @_documented_only(blp.arguments(WaitArgsSchema, location="query"))
    @_documented_only(blp.arguments(ConditionalHeadersSchema, location="headers"))
    @blp.response(200, JobStatusSchema, headers=_STATUS_HEADERS, example=JOB_STATUS_EXAMPLE)
    @blp.alt_response(
        304, headers=_STATUS_HEADERS,
        description="Not Modified: the job's ETag still matches If-None-Match. No body; the headers are "
        "those of a 200.",
    )
    @_documents(400, 404, 422)
    def get(self, job_id):
        """Get a job's compact status

        The endpoint to poll, and the status monitor that 202 answers name in Operation-Location. Send
        the ETag you hold in If-None-Match: an unchanged job answers 304 with no body, which costs
        less of the rate budget. With `wait=N` as well, the answer waits up to N seconds for a change.
        """
        _check_job_id(job_id)
        wait, presented = status_arguments()
        service, owner = _service(), current_owner()
        waiting = wait > 0 and presented is not None
        # The cheapest answer: the status this process last heard of (a 304 or a 200 from memory),
        # unless the client holds a newer version than that (it changed the job through another
        # process a moment ago, and the signal is still on its way here).
        held_version = newest_version(presented) if presented is not None else 0
        status = None if waiting else service.known_status(owner, job_id)
        if status is not None and held_version > status.version:
            status = None
        if status is None:
            with service.notifier.listen([job_id]) if waiting else nullcontext() as changed:
                status = service.status(owner, job_id, held_version)
                if waiting and matches_tag(presented, status_etag(status)) and not JobStatus(status.status).is_terminal:
                    _wait_without_database(changed, wait)
                    status = service.known_status(owner, job_id) or service.status(owner, job_id)
        tag, hint_ms = status_etag(status), poll_hint_ms(status)
        headers = _status_headers(hint_ms, tag)
        if presented is not None and matches_tag(presented, tag):
            return Response(status=304, headers=headers)
        charge_full_answer()
        # Built by hand, not by JobStatusSchema: the poll is the hot path, and a test pins the two equal.
        return _json(status.answer_json(hint_ms), headers)


@blp.route("/statuses")
class JobStatuses(MethodView):
    @blp.doc(operationId="getJobStatuses")
    @_documented_only(blp.arguments(
        BatchStatusRequestSchema, example={"ids": [JOB_STATUS_EXAMPLE["id"]], "versions": {JOB_STATUS_EXAMPLE["id"]: 4}}))
    @blp.arguments(WaitArgsSchema, location="query", as_kwargs=True)
    @blp.response(
        200, BatchStatusSchema, headers=_JOB_HEADERS,
        example={"jobs": [JOB_STATUS_EXAMPLE], "unchanged": [], "not_found": [], "poll_after_ms": 500},
    )
    @_documents(400, 413, 415, 422)
    def post(self, wait):
        """Poll many jobs at once

        Send up to 100 ids with the version you hold of each: only the jobs whose version changed come
        back in full; the others are listed as unchanged or not found. With `wait=N`, an answer with
        nothing changed waits up to N seconds for a change.
        """
        body = batch_arguments()
        service, owner = _service(), current_owner()
        ids = list(dict.fromkeys(body["ids"]))  # de-duplicated, order kept
        versions = body["versions"]
        answer = _BatchAnswer(service, owner, ids, versions)
        if wait == 0 or answer.changed or answer.poll_after_ms is None:
            return _json(answer.json())
        # Subscribe to the caller's own jobs only: a wake-up by another owner's job would be a
        # timing side channel. Then read again, so a change that landed between the first read
        # and the subscription is answered at once instead of being slept through.
        not_found = set(answer.not_found)
        with service.notifier.listen([i for i in ids if i not in not_found]) as changed:
            answer = _BatchAnswer(service, owner, ids, versions)
            if not answer.changed and answer.poll_after_ms is not None:
                _wait_without_database(changed, wait)
                answer = _BatchAnswer(service, owner, ids, versions)
        return _json(answer.json())


def _status_headers(hint_ms: int | None, tag: str) -> dict[str, str]:
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    retry_after = retry_after_s(hint_ms)
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return headers


def _json(body: str, headers: dict[str, str] | None = None) -> Response:
    return Response(body, 200, headers, mimetype="application/json")


def _wait_without_database(changed, wait_s: int) -> None:
    """Take one of the key's long-poll slots (429 past the cap), give the database connection back,
    then sleep until a change is signalled or time is up."""
    slots = current_app.extensions["long_poll_slots"]
    with slots.hold(current_key_id(), wait_s):
        db.session.remove()
        gauge = current_app.extensions["load_gauge"]
        gauge.leave()  # a parked long poll costs a thread, not work: it does not count as load
        try:
            with telemetry.parked():
                changed.wait(wait_s)
        finally:
            gauge.enter()


class _BatchAnswer:
    """A batch poll's answer: the changed jobs' bodies are copied from their snapshots as JSON."""

    def __init__(self, service: JobService, owner: str, ids: list[str], versions: dict[str, int]) -> None:
        statuses = service.statuses(owner, ids, versions)
        gauge = current_app.extensions["load_gauge"]
        self.changed, self.unchanged, self.not_found, hints = [], [], [], []
        for job_id in ids:
            status = statuses.get(job_id)
            if status is None:
                self.not_found.append(job_id)
                continue
            hint_ms = poll_hint_ms(status, gauge)
            if hint_ms is not None:
                hints.append(hint_ms)
            if versions.get(job_id) == status.version:
                self.unchanged.append(job_id)
            else:
                self.changed.append(status.answer_json(hint_ms))
        self.poll_after_ms = min(hints) if hints else None

    def json(self) -> str:
        """What BatchStatusSchema would dump, in its order (a test pins this)."""
        return (
            f'{{"jobs":[{",".join(self.changed)}],"unchanged":{json.dumps(self.unchanged)},'
            f'"not_found":{json.dumps(self.not_found)},"poll_after_ms":{json.dumps(self.poll_after_ms)}}}'
        )


@blp.route("/<job_id:job_id>/cancel", parameters=_JOB_ID_PARAMETER)
class JobCancel(MethodView):
    @blp.doc(operationId="cancelJob", responses={202: {"links": job_operation_links()}})
    @blp.response(
        202, JobSchema, headers=_ACCEPTED_HEADERS, example=CANCELLING_JOB_EXAMPLE,
        description="Accepted: a queued job is cancelled at once, a running one at its next checkpoint. "
        "Poll Operation-Location until the status is cancelled (or the job won the race and finished).",
    )
    @_documents(400, 404, 409, 415)
    def post(self, job_id):
        """Cancel a job

        A queued job is cancelled at once; a running job stops at its next checkpoint, so the answer
        may still say running, with cancel_requested_at set. A finished job answers 409.
        """
        _check_job_id(job_id)
        job = _service().cancel(current_owner(), job_id)
        return job, 202, accepted_headers(job)


@blp.route("/<job_id:job_id>/events", parameters=_JOB_ID_PARAMETER)
class JobEvents(MethodView):
    @blp.doc(operationId="listJobEvents")
    @blp.arguments(EventsArgsSchema, location="query", as_kwargs=True)
    @blp.response(
        200, EventListSchema, headers=_JOB_HEADERS,
        example={"events": [{"seq": 2, "at": "2026-11-27T12:19:28.218417+00:00", "status": "running",
                             "percent": 0.0, "stage": None, "message": None}]},
    )
    @_documents(400, 404, 422)
    def get(self, job_id, after):
        """Get a job's status history

        Every status and progress change, oldest first. Pass the last `seq` you saw as `after` to
        read only what is new.
        """
        _check_job_id(job_id)
        return {"events": _service().events(current_owner(), job_id, after)}
