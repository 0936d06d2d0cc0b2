"""Reads: one owner's jobs, their history, and places in the queue. Nothing here writes."""
from __future__ import annotations

from sqlalchemy import func, select
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
    """The owner's jobs among ``job_ids``, in one query; others' and unknown ids are absent."""
    if not job_ids:
        return {}
    rows = db.session.scalars(select(Job).where(Job.id.in_(job_ids), Job.owner == owner))
    return {job.id: job for job in rows}


def queue_position(job_id: str) -> int:
    """How many queued jobs (of any owner) are ahead of this queued job: one index range count."""
    return db.session.scalar(
        select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED.value, Job.id < job_id)
    )


def queue_positions(job_ids: list[str]) -> dict[str, int]:
    """How many queued jobs (of any owner) are ahead of each queued job, in one query."""
    if not job_ids:
        return {}
    ahead = aliased(Job)
    count_ahead = (
        select(func.count())
        .select_from(ahead)
        .where(ahead.status == JobStatus.QUEUED.value, ahead.id < Job.id)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(Job.id, count_ahead).where(Job.id.in_(job_ids), Job.status == JobStatus.QUEUED.value)
    )
    return {job_id: position for job_id, position in rows}
