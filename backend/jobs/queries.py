"""Reads: one owner's jobs, their history, and places in the queue. Nothing here writes."""
from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import Job, JobEvent
from .cursors import decode_cursor, encode_cursor
from .errors import JobNotFound
from .status import JobStatus

MAX_LIST_LIMIT = 100
MAX_EVENTS_PER_PAGE = 500


def get(owner: str, job_id: str) -> Job:
    job = db.session.get(Job, job_id)
    if job is None or job.owner != owner:
        raise JobNotFound()
    return job


def list_jobs(
    owner: str,
    *,
    status: str | None = None,
    agent: str | None = None,
    request_id: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> tuple[list[Job], str | None]:
    """An owner's jobs, newest first, and the cursor of the next page (None on the last)."""
    query = select(Job).where(Job.owner == owner)
    if status is not None:
        query = query.where(Job.status == status)
    if agent is not None:
        query = query.where(Job.agent == agent)
    if request_id is not None:
        query = query.where(Job.request_id == request_id)
    if cursor is not None:
        query = query.where(Job.id < decode_cursor(cursor))
    limit = max(1, min(limit, MAX_LIST_LIMIT))
    # One row more than asked tells whether another page exists without a COUNT.
    rows = list(db.session.scalars(query.order_by(Job.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
    return page, next_cursor


def events(owner: str, job_id: str, after: int = 0) -> list[JobEvent]:
    get(owner, job_id)
    query = (
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.seq > after)
        .order_by(JobEvent.seq)
        .limit(MAX_EVENTS_PER_PAGE)
    )
    return list(db.session.scalars(query))


def get_many(owner: str, job_ids: list[str]) -> dict[str, Job]:
    """The owner's jobs among ``job_ids``, each queued one with its ``queue_position``, all in one
    statement: one snapshot of the table, so a job claimed while it is read is either still queued
    with its place or already running, never queued without a place."""
    if not job_ids:
        return {}
    ahead = aliased(Job)
    count_ahead = (
        select(func.count())
        .select_from(ahead)
        .where(ahead.status == JobStatus.QUEUED.value, ahead.id < Job.id)
        .scalar_subquery()
    )
    # CASE evaluates the count only for queued rows: running and finished jobs cost no range scan.
    place = case((Job.status == JobStatus.QUEUED.value, count_ahead), else_=None)
    jobs = {}
    for job, position in db.session.execute(select(Job, place).where(Job.id.in_(job_ids), Job.owner == owner)):
        job.queue_position = position
        jobs[job.id] = job
    return jobs
