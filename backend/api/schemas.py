"""Marshmallow schemas of the HTTP API: what is accepted and what is answered.

Response schemas list every member they always send as ``required`` (generated clients then type
them as present) and mark the ones that may be ``null`` with ``allow_none`` (OpenAPI 3.1 renders
``type: [..., "null"]``, which generators keep). Strings, integers and arrays carry bounds, so the
document says what a fuzzer or a strict client may expect.
"""
from __future__ import annotations

import marshmallow as ma
from flask import current_app
from marshmallow import fields, validate

from ..ids import JOB_ID_PATTERN, REQUEST_ID_PATTERN
from ..jobs.hints import LoadGauge, poll_after_ms
from ..jobs.snapshots import StatusSnapshot
from ..jobs.status import JobStatus
from ..models import Job, utcnow
from .links import job_links

STATUSES = [s.value for s in JobStatus]
MAX_WAIT_S = 30
MAX_IF_NONE_MATCH_CHARS = 1024
MAX_BATCH_IDS = 100
MAX_LIST_LIMIT = 100
JOB_ID_EXAMPLE = "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW"
JOB_ID_LENGTH = 30
# Bounds the document promises for values the service makes; they are generous on purpose.
MAX_INT32 = 2**31 - 1
MAX_TEXT_CHARS = 10_000
MAX_URL_CHARS = 2048
DATETIME_CHARS = 40
MAX_EVENTS = 1000
MAX_AGENTS = 100
# Machine-readable names: problem and error codes, check names.
CODE_PATTERN = "^[a-z][a-z0-9_]*$"
AGENT_NAME_PATTERN = "^[a-z][a-z0-9_-]*$"


def _job_id(**metadata) -> fields.String:
    return fields.String(
        required=True,
        metadata={"pattern": JOB_ID_PATTERN, "maxLength": JOB_ID_LENGTH, "example": JOB_ID_EXAMPLE, **metadata},
    )


def _text(max_chars: int = MAX_TEXT_CHARS, *, allow_none: bool = False, **metadata) -> fields.String:
    return fields.String(required=True, allow_none=allow_none, metadata={"maxLength": max_chars, **metadata})


def _timestamp(*, allow_none: bool = False, **metadata) -> fields.DateTime:
    return fields.DateTime(required=True, allow_none=allow_none, metadata={"maxLength": DATETIME_CHARS, **metadata})


def _count(*, allow_none: bool = False, maximum: int = MAX_INT32, **metadata) -> fields.Integer:
    return fields.Integer(
        required=True,
        allow_none=allow_none,
        metadata={"format": "int32", "minimum": 0, "maximum": maximum, **metadata},
    )


def _status(**metadata) -> fields.String:
    # The title names the enum in generated code ("JobState", "EventState"...): without it,
    # openapi-python-client would name Job.status's enum "JobStatus", the name of the status model.
    return fields.String(
        required=True,
        validate=validate.OneOf(STATUSES),
        metadata={"example": "running", "title": "State", **metadata},
    )


class SubmitJobSchema(ma.Schema):
    agent = fields.String(
        load_default="canvas",
        validate=validate.Length(min=1, max=64),
        metadata={
            "description": "The agent to run (see GET /api/ai/agents).",
            "example": "canvas",
            "pattern": r"^\S(.*\S)?$",
        },
    )
    input = fields.Dict(
        required=True,
        metadata={
            "description": "The agent's input; its schema is listed by GET /api/ai/agents.",
            "example": {"prompt": "three red circles in a row"},
        },
    )
    request_id = fields.String(
        validate=validate.Regexp(
            REQUEST_ID_PATTERN, error="Use 1-128 characters of letters, digits and . _ : -"
        ),
        metadata={
            "description": "Your idempotency key: resubmitting the same body with it returns the same job.",
            "example": "order-1234:render",
            "maxLength": 128,
        },
    )


def poll_hint_ms(job: Job | StatusSnapshot, gauge: LoadGauge | None = None) -> int | None:
    """The poll hint for ``job``, stretched by this process's current load (``gauge``, by default
    the app's).

    For a ``Job`` (a row read for this request), computed once per version and then reused: the
    ``Retry-After`` header and the body's ``poll_after_ms`` of one answer never disagree, however the
    load or the clock moved while the answer was being built. A ``StatusSnapshot`` is shared by
    every poll of the process and keeps nothing: its answers compute the hint once and pass it on."""
    memo_of = getattr(job, "__dict__", None)
    memo = memo_of.get("_poll_hint") if memo_of is not None else None
    if memo is not None and memo[0] == (job.version, job.status):
        return memo[1]
    gauge = gauge or current_app.extensions["load_gauge"]
    hint_ms = poll_after_ms(job, utcnow(), gauge.factor())
    if memo_of is not None:
        memo_of["_poll_hint"] = ((job.version, job.status), hint_ms)
    return hint_ms


class ProgressSchema(ma.Schema):
    percent = fields.Float(
        required=True, metadata={"example": 35.0, "minimum": 0, "maximum": 100, "format": "double"}
    )
    stage = _text(64, allow_none=True, example="plan")
    message = _text(500, allow_none=True, example="Planned 3 shapes")


class JobErrorSchema(ma.Schema):
    code = _text(
        64, example="unintelligible_prompt", pattern=CODE_PATTERN, description="A stable machine-readable error code."
    )
    message = _text(allow_none=True, example="The prompt names no shape I can draw.")
    retryable = fields.Boolean(
        required=True, metadata={"description": "Whether submitting the same input again may succeed."}
    )


def _link(name: str) -> fields.Function:
    suffix = "" if name == "self" else f"/{name}"
    return fields.Function(
        lambda job: job_links(job.id)[name],
        required=True,
        metadata={
            "type": "string",
            "format": "uri-reference",
            "maxLength": MAX_URL_CHARS,
            "example": f"/api/ai/jobs/{JOB_ID_EXAMPLE}{suffix}",
        },
    )


class LinksSchema(ma.Schema):
    """The job's URLs (relative to the API's origin)."""

    self = _link("self")
    status = _link("status")
    cancel = _link("cancel")
    events = _link("events")


class _JobLinks(fields.Nested):
    """The links object, computed from the job itself (a Job has no ``links`` attribute)."""

    def get_value(self, obj, attr, accessor=None, default=ma.missing):
        return obj


class JobStatusSchema(ma.Schema):
    """The compact status that pages poll."""

    id = _job_id()
    status = _status(
        description="queued and running are not terminal; succeeded, failed and cancelled are final."
    )
    progress = fields.Nested(ProgressSchema, required=True)
    version = fields.Integer(
        required=True,
        metadata={
            "description": "Increases on every status or progress change.",
            "format": "int32",
            "minimum": 1,
            "maximum": MAX_INT32,
            "example": 5,
        },
    )
    created_at = _timestamp()
    started_at = _timestamp(allow_none=True)
    finished_at = _timestamp(allow_none=True)
    updated_at = _timestamp()
    estimated_completion_at = _timestamp(allow_none=True, description="An estimate.")
    error = fields.Nested(
        JobErrorSchema,
        required=True,
        allow_none=True,
        metadata={"description": "Why the job failed; null unless it failed."},
    )
    queue_position = _count(
        allow_none=True,
        description="While queued: how many queued jobs are ahead (an estimate); 0 means next in line.",
    )
    poll_after_ms = fields.Method(
        "get_poll_after_ms",
        required=True,
        allow_none=True,
        metadata={
            "type": "integer",
            "format": "int32",
            "minimum": 0,
            "maximum": MAX_INT32,
            "example": 500,
            "description": "Suggested delay before the next poll; null once the job is terminal.",
        },
    )

    def get_poll_after_ms(self, job: Job) -> int | None:
        return poll_hint_ms(job)


class JobSchema(JobStatusSchema):
    """A job in full."""

    agent = _text(64, example="canvas", pattern=AGENT_NAME_PATTERN)
    input = fields.Dict(required=True, metadata={"description": "The input as submitted (after defaults)."})
    request_id = fields.String(
        required=True, allow_none=True, metadata={"pattern": REQUEST_ID_PATTERN, "maxLength": 128}
    )
    result = fields.Dict(
        required=True, allow_none=True, metadata={"description": "The agent's output; null until it succeeded."}
    )
    attempts = _count(maximum=1000, description="Attempts started so far, counting the first.")
    cancel_requested_at = _timestamp(allow_none=True)
    heartbeat_at = _timestamp(allow_none=True)
    next_attempt_at = _timestamp(allow_none=True, description="When a retry is due, while one waits.")
    links = _JobLinks(LinksSchema, required=True)


class WaitArgsSchema(ma.Schema):
    wait = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_WAIT_S),
        metadata={
            "description": "Long-poll: with If-None-Match (or batch versions), hold the request up to "
            "this many seconds until something changes.",
            "format": "int32",
        },
    )


class ConditionalHeadersSchema(ma.Schema):
    if_none_match = fields.String(
        data_key="If-None-Match",
        # None when absent, yet documented as a plain optional string: a header is never null.
        load_default=lambda: None,
        validate=validate.Length(max=MAX_IF_NONE_MATCH_CHARS),
        metadata={
            "description": "The ETag of the status you hold; unchanged -> 304 with no body.",
            "example": '"v5"',
            "pattern": r"^[\x20-\x7e]*$",
        },
    )


class BatchStatusRequestSchema(ma.Schema):
    ids = fields.List(
        fields.String(
            validate=validate.Regexp(JOB_ID_PATTERN, error="Not a job id."),
            metadata={"maxLength": JOB_ID_LENGTH},
        ),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH_IDS),
        metadata={"example": [JOB_ID_EXAMPLE]},
    )
    versions = fields.Dict(
        keys=fields.String(validate=validate.Regexp(JOB_ID_PATTERN, error="Not a job id.")),
        values=fields.Integer(validate=validate.Range(min=0, max=MAX_INT32), metadata={"format": "int32"}),
        load_default=dict,
        metadata={
            "description": "The version you last saw of each job; those unchanged are listed, not sent.",
            "example": {JOB_ID_EXAMPLE: 3},
            "maxProperties": 10_000,
        },
    )


class BatchStatusSchema(ma.Schema):
    jobs = fields.List(
        fields.Nested(JobStatusSchema),
        required=True,
        metadata={"description": "Jobs that changed.", "maxItems": MAX_BATCH_IDS},
    )
    unchanged = fields.List(
        _job_id(), required=True, metadata={"maxItems": MAX_BATCH_IDS, "description": "Ids whose version you hold."}
    )
    not_found = fields.List(
        _job_id(), required=True, metadata={"description": "Unknown, or not yours.", "maxItems": MAX_BATCH_IDS}
    )
    poll_after_ms = _count(
        allow_none=True,
        example=500,
        description="The smallest hint of the unfinished jobs; null when none is unfinished.",
    )


class JobListArgsSchema(ma.Schema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    agent = fields.String(validate=validate.Length(min=1, max=64), metadata={"pattern": r"^\S(.*\S)?$"})
    request_id = fields.String(validate=validate.Regexp(REQUEST_ID_PATTERN), metadata={"maxLength": 128})
    limit = fields.Integer(
        load_default=20, validate=validate.Range(min=1, max=MAX_LIST_LIMIT), metadata={"format": "int32"}
    )
    cursor = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "next_cursor of the previous page.", "pattern": r"^[\x21-\x7e]+$"},
    )


class JobListSchema(ma.Schema):
    jobs = fields.List(fields.Nested(JobSchema), required=True, metadata={"maxItems": MAX_LIST_LIMIT})
    next_cursor = _text(
        200, allow_none=True, pattern=r"^[\x21-\x7e]+$", description="Pass as cursor for the next page; null on the last page."
    )


class EventsArgsSchema(ma.Schema):
    after = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_INT32),
        metadata={"description": "Return events whose seq is greater than this.", "format": "int32"},
    )


class EventSchema(ma.Schema):
    seq = _count(description="The job's version after this change.", example=2)
    at = _timestamp()
    status = _status()
    percent = fields.Float(required=True, metadata={"minimum": 0, "maximum": 100, "format": "double"})
    stage = _text(64, allow_none=True)
    message = _text(500, allow_none=True)


class EventListSchema(ma.Schema):
    events = fields.List(fields.Nested(EventSchema), required=True, metadata={"maxItems": MAX_EVENTS})


class AgentSchema(ma.Schema):
    name = _text(64, example="canvas", pattern=AGENT_NAME_PATTERN)
    description = _text()
    time_limit_s = fields.Float(required=True, metadata={"minimum": 0, "format": "double", "example": 60.0})
    input_schema = fields.Dict(required=True, metadata={"description": "JSON Schema of the agent's input."})


class AgentListSchema(ma.Schema):
    agents = fields.List(fields.Nested(AgentSchema), required=True, metadata={"maxItems": MAX_AGENTS})


class HealthSchema(ma.Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "unavailable"]), metadata={"example": "ok"})
    checks = fields.Dict(
        required=True,
        keys=fields.String(),
        values=fields.Dict(),
        metadata={"example": {"database": {"ok": True, "latency_ms": 0.4}}},
    )
    failing = fields.List(
        fields.String(metadata={"maxLength": 64, "pattern": CODE_PATTERN, "example": "database"}),
        metadata={"description": "The checks that failed.", "maxItems": 16},
    )
