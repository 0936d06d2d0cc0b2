"""How soon a client should poll again: the server's hint, by status and age."""
from __future__ import annotations

from datetime import datetime

from ..models import Job
from .status import JobStatus

QUEUED_POLL_MS = 2000
# Just after a start, progress moves fast: poll quickly, then ease off for long runs.
RUNNING_FRESH_POLL_MS = 500
RUNNING_POLL_MS = 1000
RUNNING_LONG_POLL_MS = 3000
FRESH_RUN_S = 10
LONG_RUN_S = 120


def poll_after_ms(job: Job, now: datetime) -> int | None:
    """The suggested delay before the next poll; None once the job is terminal."""
    status = JobStatus(job.status)
    if status.is_terminal:
        return None
    if status is JobStatus.QUEUED or job.started_at is None:
        return QUEUED_POLL_MS
    running_s = (now - job.started_at).total_seconds()
    if running_s < FRESH_RUN_S:
        return RUNNING_FRESH_POLL_MS
    if running_s > LONG_RUN_S:
        return RUNNING_LONG_POLL_MS
    return RUNNING_POLL_MS


def retry_after_s(poll_ms: int | None) -> str | None:
    """The Retry-After header value (whole seconds, at least 1) for a poll hint."""
    if poll_ms is None:
        return None
    return str(max(1, round(poll_ms / 1000)))
