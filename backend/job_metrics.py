"""The job series (metrics.py) recorded at the moments of a job's life, plus the log line of each.

Called by the job's state machine after a committed move and by the sweep after a pass; each call
is a few counter updates and one log line, with ids and codes only (never input or results).
"""
from __future__ import annotations

import logging
from datetime import datetime

from . import metrics

log = logging.getLogger("backend.jobs")

_SWEEP_ACTIONS = {"requeued": "requeued", "failed": "failed_worker_lost", "resent": "resent", "cancelled": "cancelled"}


def attempt_started(
    job_id: str, agent: str, attempt: int, *, now: datetime, queued_since: datetime | None,
    lost_worker_beat_at: datetime | None = None,
) -> None:
    """An attempt was claimed. ``lost_worker_beat_at``: the last heartbeat of the worker that lost
    the previous attempt, when the job is running again after the sweep requeued it."""
    metrics.JOB_ATTEMPTS.labels(agent).inc()
    if queued_since is not None:
        metrics.JOB_QUEUE_TIME.labels(agent).observe(max(0.0, (now - queued_since).total_seconds()))
    extra = {"job_id": job_id, "agent": agent, "attempt": attempt}
    if lost_worker_beat_at is not None:
        recovery_s = max(0.0, (now - lost_worker_beat_at).total_seconds())
        metrics.RECOVERY_TIME.observe(recovery_s)
        extra["recovery_s"] = round(recovery_s, 3)
        log.info("job running again %.1f s after its worker's last heartbeat", recovery_s, extra=extra)
    else:
        log.info("job attempt %d started", attempt, extra=extra)


def retry_scheduled(job_id: str, agent: str, attempt: int, code: str, delay_ms: int) -> None:
    metrics.JOB_RETRIES.labels(agent).inc()
    log.info("job attempt %d failed (%s); retrying in %d ms", attempt, code, delay_ms,
             extra={"job_id": job_id, "agent": agent, "error_code": code})


def job_finished(job_id: str, agent: str, status: str, *, started_at: datetime | None, finished_at: datetime,
                 error_code: str | None = None) -> None:
    """The job reached a terminal status (succeeded, failed or cancelled)."""
    metrics.JOBS_FINISHED.labels(agent, status).inc()
    if started_at is not None:
        metrics.JOB_RUN_TIME.labels(agent).observe(max(0.0, (finished_at - started_at).total_seconds()))
    log.info("job %s%s", status, f" ({error_code})" if error_code else "",
             extra={"job_id": job_id, "agent": agent, "status": status, "error_code": error_code})


def sweep_pass(counts: dict[str, int]) -> None:
    """Count what one sweep pass did (keys as the sweep reports them)."""
    for key, count in counts.items():
        action = _SWEEP_ACTIONS.get(key, key)
        if count:
            metrics.SWEEP_ACTIONS.labels(action).inc(count)
