"""Marshmallow schemas of the HTTP API: what is accepted and what is answered."""
from __future__ import annotations

import marshmallow as ma
from flask import current_app
from marshmallow import fields, validate

from ..ids import JOB_ID_PATTERN, REQUEST_ID_PATTERN
from ..jobs.hints import poll_after_ms
from ..jobs.status import JobStatus
from ..models import Job, utcnow
from .links import job_links

STATUSES = [s.value for s in JobStatus]
MAX_WAIT_S = 30
MAX_BATCH_IDS = 100
STATUS_HEADERS = {
    "ETag": {"description": "Strong tag of the job's state.", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Seconds until the next poll is worth it; absent once the job is terminal.",
        "schema": {"type": "integer"},
    },
    "Cache-Control": {"schema": {"type": "string"}, "example": "no-cache"},
}
_JOB_ID_EXAMPLE = "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW"


class SubmitJobSchema(ma.Schema):
    agent = fields.String(
        load_default="canvas",
        validate=validate.Length(min=1, max=64),
        metadata={"description": "The agent to run (see GET /api/ai/agents).", "example": "canvas"},
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
        },
    )


def poll_hint_ms(job: Job) -> int | None:
    """The poll hint for ``job`` now, stretched by this process's current load."""
    return poll_after_ms(job, utcnow(), current_app.extensions["load_gauge"].factor())


class ProgressSchema(ma.Schema):
    percent = fields.Float(metadata={"example": 35.0})
    stage = fields.String(allow_none=True, metadata={"example": "plan"})
    message = fields.String(allow_none=True, metadata={"example": "Planned 3 shapes"})


class JobErrorSchema(ma.Schema):
    code = fields.String(metadata={"example": "unintelligible_prompt"})
    message = fields.String()
    retryable = fields.Boolean()


class LinksSchema(ma.Schema):
    self = fields.String()
    status = fields.String()
    cancel = fields.String()
    events = fields.String()


class JobStatusSchema(ma.Schema):
    """The compact status that pages poll."""

    id = fields.String(metadata={"example": _JOB_ID_EXAMPLE, "pattern": JOB_ID_PATTERN})
    status = fields.String(validate=validate.OneOf(STATUSES), metadata={"example": "running"})
    progress = fields.Nested(ProgressSchema)
    version = fields.Integer(metadata={"description": "Increases on every status or progress change."})
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()
    estimated_completion_at = fields.DateTime(allow_none=True, metadata={"description": "An estimate."})
    error = fields.Nested(JobErrorSchema, allow_none=True)
    queue_position = fields.Integer(
        allow_none=True,
        metadata={"description": "While queued: how many queued jobs are ahead (an estimate)."},
    )
    poll_after_ms = fields.Method(
        "get_poll_after_ms",
        allow_none=True,
        metadata={"description": "Suggested delay before the next poll; null once the job is terminal."},
    )

    def get_poll_after_ms(self, job: Job) -> int | None:
        return poll_hint_ms(job)


class JobSchema(JobStatusSchema):
    """A job in full."""

    agent = fields.String(metadata={"example": "canvas"})
    input = fields.Dict()
    request_id = fields.String(allow_none=True)
    result = fields.Dict(allow_none=True)
    attempts = fields.Integer()
    cancel_requested_at = fields.DateTime(allow_none=True)
    heartbeat_at = fields.DateTime(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)
    links = fields.Function(lambda job: job_links(job.id))


class WaitArgsSchema(ma.Schema):
    wait = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_WAIT_S),
        metadata={
            "description": "Long-poll: with If-None-Match (or batch versions), hold the request up to "
            "this many seconds until something changes."
        },
    )


class ConditionalHeadersSchema(ma.Schema):
    if_none_match = fields.String(
        data_key="If-None-Match",
        load_default=None,
        validate=validate.Length(max=1024),
        metadata={"description": "The ETag of the status you hold; unchanged -> 304 with no body."},
    )


class BatchStatusRequestSchema(ma.Schema):
    ids = fields.List(
        fields.String(validate=validate.Regexp(JOB_ID_PATTERN, error="Not a job id.")),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH_IDS),
        metadata={"example": [_JOB_ID_EXAMPLE]},
    )
    versions = fields.Dict(
        keys=fields.String(validate=validate.Regexp(JOB_ID_PATTERN, error="Not a job id.")),
        values=fields.Integer(validate=validate.Range(min=0)),
        load_default=dict,
        metadata={
            "description": "The version you last saw of each job; those unchanged are listed, not sent.",
            "example": {_JOB_ID_EXAMPLE: 3},
        },
    )


class BatchStatusSchema(ma.Schema):
    jobs = fields.List(fields.Nested(JobStatusSchema), metadata={"description": "Jobs that changed."})
    unchanged = fields.List(fields.String())
    not_found = fields.List(fields.String(), metadata={"description": "Unknown, or not yours."})
    poll_after_ms = fields.Integer(allow_none=True)


class JobListArgsSchema(ma.Schema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    agent = fields.String(validate=validate.Length(min=1, max=64))
    request_id = fields.String(validate=validate.Regexp(REQUEST_ID_PATTERN))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(validate=validate.Length(min=1, max=200))


class JobListSchema(ma.Schema):
    jobs = fields.List(fields.Nested(JobSchema))
    next_cursor = fields.String(allow_none=True)


class EventsArgsSchema(ma.Schema):
    after = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=2**31 - 1),
        metadata={"description": "Return events whose seq is greater than this."},
    )


class EventSchema(ma.Schema):
    seq = fields.Integer()
    at = fields.DateTime()
    status = fields.String()
    percent = fields.Float()
    stage = fields.String(allow_none=True)
    message = fields.String(allow_none=True)


class EventListSchema(ma.Schema):
    events = fields.List(fields.Nested(EventSchema))


class AgentSchema(ma.Schema):
    name = fields.String(metadata={"example": "canvas"})
    description = fields.String()
    time_limit_s = fields.Float()
    input_schema = fields.Dict(metadata={"description": "JSON Schema of the agent's input."})


class AgentListSchema(ma.Schema):
    agents = fields.List(fields.Nested(AgentSchema))


class HealthSchema(ma.Schema):
    status = fields.String(metadata={"example": "ok"})
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(),
        metadata={"example": {"database": {"ok": True, "latency_ms": 0.4}}},
    )
    failing = fields.List(fields.String(), metadata={"description": "The checks that failed."})
