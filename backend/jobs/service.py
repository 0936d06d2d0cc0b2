"""The job service: submit, read, list, cancel, and every status change a worker makes.

HTTP views and Dramatiq actors both call this module and nothing below it. Every status change goes
through ``_write``: one conditional UPDATE (compare-and-set on status, and on the attempt number for
worker writes) that bumps ``version`` and appends the matching ``job_events`` row in one transaction.
A duplicate delivery, a stale worker or a racing cancel therefore loses the race instead of moving a
job backwards or out of a terminal state.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

import marshmallow
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from ..agents.base import Agent
from ..extensions import db
from ..ids import is_job_id, new_job_id
from ..models import Job, JobEvent, utcnow
from .errors import (
    InvalidCursor,
    InvalidJobInput,
    JobAlreadyFinished,
    JobNotFound,
    RequestIdConflict,
    UnknownAgent,
)
from .status import TERMINAL, JobStatus, sources_of

MAX_LIST_LIMIT = 100
MAX_EVENTS_PER_PAGE = 500
_CURSOR_PREFIX = "before:"
_RETURNED = (
    Job.version,
    Job.status,
    Job.attempts,
    Job.agent,
    Job.input,
    Job.progress_percent,
    Job.progress_stage,
    Job.progress_message,
    Job.cancel_requested_at,
)


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one attempt of a job; every write it makes is fenced by ``attempt``."""

    job_id: str
    agent: str
    input: dict[str, Any]
    attempt: int
    started_at: datetime


class AttemptSuperseded(Exception):
    """The job no longer belongs to this attempt (finished, cancelled or handed to another worker)."""


def _canonical_hash(agent: str, job_input: Mapping[str, Any]) -> str:
    body = json.dumps({"agent": agent, "input": job_input}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode((_CURSOR_PREFIX + last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor() from None
    last_id = raw.removeprefix(_CURSOR_PREFIX)
    if not raw.startswith(_CURSOR_PREFIX) or not is_job_id(last_id):
        raise InvalidCursor()
    return last_id


class JobService:
    """The rules of a job's life. One instance per app, reached through ``current_app``."""

    def __init__(self, *, agents: Mapping[str, Agent], queue, config, notifier, estimator) -> None:
        self.agents = agents
        self.queue = queue
        self.config = config
        self.notifier = notifier
        self.estimator = estimator

    # ---- what callers over HTTP ask for -------------------------------------------------------

    def submit(
        self, owner: str, agent_name: str, job_input: Mapping[str, Any], request_id: str | None
    ) -> tuple[Job, bool]:
        """Create a job and queue it; with a known request_id return the first job instead.

        Returns ``(job, created)``. The row is committed before the message is sent, so a broker
        outage never loses an accepted job: it stays queued until the sweep enqueues it again.
        """
        agent = self.agents.get(agent_name)
        if agent is None:
            raise UnknownAgent(
                f"Unknown agent {agent_name!r}; enabled agents: {', '.join(sorted(self.agents))}.",
                errors={"json": {"agent": [f"Must be one of: {', '.join(sorted(self.agents))}."]}},
            )
        try:
            loaded = agent.input_schema().load(job_input)
        except marshmallow.ValidationError as exc:
            raise InvalidJobInput(errors={"json": {"input": exc.normalized_messages()}}) from None
        request_hash = _canonical_hash(agent_name, loaded)

        if request_id is not None:
            existing = self._by_request_id(owner, request_id)
            if existing is not None:
                return self._replay(existing, request_hash), False

        now = utcnow()
        job = Job(
            id=new_job_id(),
            owner=owner,
            agent=agent_name,
            input=loaded,
            request_id=request_id,
            request_hash=request_hash,
            status=JobStatus.QUEUED.value,
            progress_percent=0.0,
            attempts=0,
            version=1,
            created_at=now,
            updated_at=now,
            enqueued_at=now,
        )
        db.session.add(job)
        db.session.add(_event_for(job, at=now, message="Job accepted"))
        try:
            db.session.commit()
        except IntegrityError:
            # Another request with the same request_id won the insert race.
            db.session.rollback()
            existing = self._by_request_id(owner, request_id) if request_id else None
            if existing is None:
                raise
            return self._replay(existing, request_hash), False
        self._send(job.id, agent_name)
        return job, True

    def get(self, owner: str, job_id: str) -> Job:
        job = db.session.get(Job, job_id)
        if job is None or job.owner != owner:
            raise JobNotFound()
        return job

    def list(
        self,
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

    def events(self, owner: str, job_id: str, after: int = 0) -> list[JobEvent]:
        self.get(owner, job_id)
        query = (
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.seq > after)
            .order_by(JobEvent.seq)
            .limit(MAX_EVENTS_PER_PAGE)
        )
        return list(db.session.scalars(query))

    def get_many(self, owner: str, job_ids: list[str]) -> dict[str, Job]:
        """The owner's jobs among ``job_ids``, in one query; others' and unknown ids are absent."""
        if not job_ids:
            return {}
        rows = db.session.scalars(select(Job).where(Job.id.in_(job_ids), Job.owner == owner))
        return {job.id: job for job in rows}

    def queue_position(self, job_id: str) -> int:
        """How many queued jobs (of any owner) are ahead of this queued job: one index range count."""
        return db.session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.status == JobStatus.QUEUED.value, Job.id < job_id)
        )

    def queue_positions(self, job_ids: list[str]) -> dict[str, int]:
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

    def cancel(self, owner: str, job_id: str) -> Job:
        """Cancel a queued job at once; ask a running one to stop at its next checkpoint."""
        for _ in range(5):
            job = self.get(owner, job_id)
            status = JobStatus(job.status)
            if status in TERMINAL:
                raise JobAlreadyFinished(
                    f"The job already ended with status {status.value!r}; it cannot be cancelled."
                )
            if status is JobStatus.RUNNING and job.cancel_requested_at is not None:
                return job
            now = utcnow()
            if status is JobStatus.QUEUED:
                moved = self._write(
                    job_id,
                    to=JobStatus.CANCELLED,
                    when=[JobStatus.QUEUED],
                    values={
                        "cancel_requested_at": now,
                        "finished_at": now,
                        "next_attempt_at": None,
                        "estimated_completion_at": None,
                    },
                    message="Cancelled before it started",
                    now=now,
                )
            else:
                moved = self._write(
                    job_id,
                    to=None,
                    when=[JobStatus.RUNNING],
                    values={"cancel_requested_at": now},
                    message="Cancellation requested",
                    now=now,
                )
            if moved is not None:
                db.session.expire_all()
                return self.get(owner, job_id)
            # The job changed between the read and the write (a worker claimed or finished it).
        raise JobAlreadyFinished("The job kept changing while it was being cancelled; try again.")

    # ---- what workers do ----------------------------------------------------------------------

    def claim(self, job_id: str) -> Claim | None:
        """Start the next attempt of a queued job, or None if it is not ours to run.

        Delivery is at-least-once: a duplicate message finds the job already running or finished
        and is skipped here.
        """
        agent = db.session.scalar(select(Job.agent).where(Job.id == job_id))
        if agent is None:
            db.session.rollback()
            return None
        now = utcnow()
        row = self._write(
            job_id,
            to=JobStatus.RUNNING,
            when=[JobStatus.QUEUED],
            values={
                "attempts": Job.attempts + 1,
                "started_at": now,
                "heartbeat_at": now,
                "next_attempt_at": None,
                "progress_stage": "starting",
                "progress_message": None,
                "estimated_completion_at": self.estimator.estimate(agent, now, now, 0.0),
                # The last attempt's error stays in the history; the new attempt starts clean.
                "error_code": None,
                "error_message": None,
                "error_retryable": None,
            },
            # A queued job with a cancel request is never started; the sweep ends it cancelled.
            only_if=[Job.cancel_requested_at.is_(None)],
            message_from=lambda r: f"Attempt {r.attempts} started",
            now=now,
        )
        if row is None:
            return None
        return Claim(job_id=job_id, agent=row.agent, input=row.input, attempt=row.attempts, started_at=now)

    def record_progress(self, claim: Claim, percent: float, stage: str, message: str) -> bool:
        """Persist progress (and a heartbeat); returns whether a cancel was requested."""
        now = utcnow()
        percent = max(0.0, min(100.0, float(percent)))
        values = {
            "progress_percent": percent,
            "progress_stage": stage[:64],
            "progress_message": message[:500] if message else None,
            "heartbeat_at": now,
            "estimated_completion_at": self.estimator.estimate(claim.agent, claim.started_at, now, percent),
        }
        row = self._write(
            claim.job_id, to=None, when=[JobStatus.RUNNING], attempt=claim.attempt, values=values, now=now
        )
        if row is None:
            raise AttemptSuperseded()
        return row.cancel_requested_at is not None

    def cancel_requested(self, claim: Claim) -> bool:
        """Whether the job was asked to stop; raises AttemptSuperseded if it is no longer ours."""
        row = db.session.execute(
            select(Job.status, Job.attempts, Job.cancel_requested_at).where(Job.id == claim.job_id)
        ).one_or_none()
        db.session.rollback()  # end the read transaction: workers hold no transaction between writes
        if row is None or row.status != JobStatus.RUNNING.value or row.attempts != claim.attempt:
            raise AttemptSuperseded()
        return row.cancel_requested_at is not None

    def succeed(self, claim: Claim, result: dict[str, Any]) -> bool:
        now = utcnow()
        return self._write(
            claim.job_id,
            to=JobStatus.SUCCEEDED,
            when=[JobStatus.RUNNING],
            attempt=claim.attempt,
            values={
                "result": result,
                "finished_at": now,
                "estimated_completion_at": None,
                "progress_percent": 100.0,
                "progress_stage": "done",
                "progress_message": None,
                "error_code": None,
                "error_message": None,
                "error_retryable": None,
            },
            message="Succeeded",
            now=now,
        ) is not None

    def fail(self, claim: Claim, code: str, message: str, *, retryable: bool = False) -> bool:
        return self._end_failed(claim.job_id, code, message, retryable, attempt=claim.attempt)

    def mark_cancelled(self, claim: Claim) -> bool:
        now = utcnow()
        return self._write(
            claim.job_id,
            to=JobStatus.CANCELLED,
            when=[JobStatus.RUNNING],
            attempt=claim.attempt,
            values={"finished_at": now, "estimated_completion_at": None},
            message="Cancelled at a checkpoint",
            now=now,
        ) is not None

    def retry_or_fail(self, claim: Claim, code: str, message: str) -> bool:
        """After a transient failure: queue the next attempt with backoff, or fail if none is left.

        Returns True when another attempt was scheduled.
        """
        if claim.attempt >= self.config.max_attempts:
            self._end_failed(
                claim.job_id,
                code,
                f"{message} (gave up after {claim.attempt} attempts)",
                True,
                attempt=claim.attempt,
            )
            return False
        delay_ms = self.retry_delay_ms(claim.attempt)
        now = utcnow()
        moved = self._write(
            claim.job_id,
            to=JobStatus.QUEUED,
            when=[JobStatus.RUNNING],
            attempt=claim.attempt,
            values={
                "next_attempt_at": now + timedelta(milliseconds=delay_ms),
                "error_code": code,
                "error_message": message,
                "error_retryable": True,
                "progress_stage": "waiting to retry",
                "estimated_completion_at": None,
                "enqueued_at": now + timedelta(milliseconds=delay_ms),
            },
            # A retry must not outlive a cancel request.
            only_if=[Job.cancel_requested_at.is_(None)],
            message=f"Attempt {claim.attempt} failed ({code}); retrying in {delay_ms / 1000:.1f} s",
            now=now,
        )
        if moved is None:
            # A cancel request won (or the attempt was superseded, and this write is refused too).
            self.mark_cancelled(claim)
            return False
        self._send(claim.job_id, claim.agent, delay_ms=delay_ms)
        return True

    def retry_delay_ms(self, attempt: int) -> int:
        """Exponential backoff with "equal jitter": uniform in [ceiling/2, ceiling], where
        ceiling = min(cap, base * 2^(attempt-1)). Half the wait is kept so retries never bunch up
        at zero; the random half spreads jobs that failed together."""
        ceiling = min(self.config.retry_backoff_max_ms, self.config.retry_backoff_base_ms * 2 ** (attempt - 1))
        return random.randint(ceiling // 2, ceiling) if ceiling > 0 else 0

    def fail_unfinished(self, job_id: str, code: str, message: str) -> bool:
        """End a queued job whose message was given up on as failed.

        A running job is left alone: either a live worker runs it (a newer delivery) or its
        heartbeat goes stale and the sweep requeues it.
        """
        return self._end_failed(job_id, code, message, False, attempt=None, when=[JobStatus.QUEUED])

    def heartbeat(self, claims: Iterable[Claim]) -> int:
        """Refresh the heartbeat of running attempts; not a visible change, so no version bump."""
        now = utcnow()
        touched = 0
        for claim in claims:
            result = db.session.execute(
                update(Job)
                .where(
                    Job.id == claim.job_id,
                    Job.status == JobStatus.RUNNING.value,
                    Job.attempts == claim.attempt,
                )
                .values(heartbeat_at=now)
                .execution_options(synchronize_session=False)
            )
            touched += result.rowcount
        db.session.commit()
        return touched

    # ---- the sweep: what no live worker will do -----------------------------------------------

    def reap_stale_running(self, *, limit: int = 100) -> dict[str, int]:
        """Jobs whose worker stopped beating: cancel, requeue or fail them (returns the counts)."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self.config.heartbeat_timeout_s)
        stale = db.session.execute(
            select(Job.id, Job.agent, Job.attempts, Job.cancel_requested_at)
            .where(Job.status == JobStatus.RUNNING.value, Job.heartbeat_at < cutoff)
            .order_by(Job.heartbeat_at)
            .limit(limit)
        ).all()
        db.session.rollback()
        counts = {"requeued": 0, "failed": 0, "cancelled": 0}
        for job_id, agent, attempt, cancel_requested_at in stale:
            lost = f"The worker running attempt {attempt} stopped responding"
            if cancel_requested_at is not None:
                moved = self._write(
                    job_id,
                    to=JobStatus.CANCELLED,
                    when=[JobStatus.RUNNING],
                    attempt=attempt,
                    values={"finished_at": now, "estimated_completion_at": None},
                    message=f"{lost}; it was being cancelled, so it is cancelled",
                    now=now,
                )
                counts["cancelled"] += moved is not None
            elif attempt < self.config.max_attempts:
                moved = self._write(
                    job_id,
                    to=JobStatus.QUEUED,
                    when=[JobStatus.RUNNING],
                    attempt=attempt,
                    values={
                        "error_code": "worker_lost",
                        "error_message": f"{lost}; the job was queued again.",
                        "error_retryable": True,
                        "progress_stage": "requeued",
                        "estimated_completion_at": None,
                        "enqueued_at": now,
                    },
                    # A cancel that lands after the read above wins at the next sweep.
                    only_if=[Job.cancel_requested_at.is_(None)],
                    message=f"{lost}; queued again",
                    now=now,
                )
                if moved is not None:
                    counts["requeued"] += 1
                    self._send(job_id, agent)
            else:
                counts["failed"] += self._end_failed(
                    job_id,
                    "worker_lost",
                    f"{lost}; all {attempt} attempts were lost with their workers, so the job is "
                    "given up (it may crash the worker that runs it).",
                    False,
                    attempt=attempt,
                )
        return counts

    def cancel_requested_queued(self, *, limit: int = 100) -> int:
        """End queued jobs that carry a cancel request (one raced a requeue) as cancelled."""
        now = utcnow()
        job_ids = db.session.scalars(
            select(Job.id)
            .where(Job.status == JobStatus.QUEUED.value, Job.cancel_requested_at.is_not(None))
            .limit(limit)
        ).all()
        db.session.rollback()
        cancelled = 0
        for job_id in job_ids:
            cancelled += self._write(
                job_id,
                to=JobStatus.CANCELLED,
                when=[JobStatus.QUEUED],
                values={"finished_at": now, "next_attempt_at": None, "estimated_completion_at": None},
                message="Cancelled before it started again",
                now=now,
            ) is not None
        return cancelled

    def resend_unclaimed(self, *, limit: int = 500) -> int:
        """Send again the messages of queued jobs not claimed long after they were due."""
        now = utcnow()
        overdue = now - timedelta(seconds=self.config.queued_requeue_after_s)
        overdue_ids = (
            select(Job.id)
            .where(
                Job.status == JobStatus.QUEUED.value,
                Job.cancel_requested_at.is_(None),
                or_(Job.enqueued_at.is_(None), Job.enqueued_at < overdue),
            )
            .order_by(Job.id)
            .limit(limit)
            .scalar_subquery()
        )
        rows = db.session.execute(
            update(Job)
            # The status is checked again by the UPDATE itself: a claim may land in between.
            .where(Job.id.in_(overdue_ids), Job.status == JobStatus.QUEUED.value)
            .values(enqueued_at=now)
            .returning(Job.id, Job.agent)
            .execution_options(synchronize_session=False)
        ).all()
        db.session.commit()
        return sum(self._send(job_id, agent) for job_id, agent in rows)

    def _send(self, job_id: str, agent_name: str, *, delay_ms: int = 0) -> bool:
        """Send the job's message; if the broker is down, mark it unsent for the next sweep."""
        agent = self.agents.get(agent_name)
        sent = self.queue.enqueue(
            job_id, delay_ms=delay_ms, time_limit_s=agent.time_limit_s if agent else None
        )
        if not sent:
            db.session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value)
                .values(enqueued_at=None)
                .execution_options(synchronize_session=False)
            )
            db.session.commit()
        return sent

    # ---- the one write path -------------------------------------------------------------------

    def _end_failed(
        self,
        job_id: str,
        code: str,
        message: str,
        retryable: bool,
        *,
        attempt: int | None,
        when: Iterable[JobStatus] = (JobStatus.QUEUED, JobStatus.RUNNING),
    ) -> bool:
        now = utcnow()
        return self._write(
            job_id,
            to=JobStatus.FAILED,
            when=when,
            attempt=attempt,
            values={
                "finished_at": now,
                "estimated_completion_at": None,
                "error_code": code,
                "error_message": message[:2000],
                "error_retryable": retryable,
                "next_attempt_at": None,
            },
            message=f"Failed: {code}",
            now=now,
        ) is not None

    def _write(
        self,
        job_id: str,
        *,
        to: JobStatus | None,
        when: Iterable[JobStatus],
        values: dict[str, Any],
        now: datetime,
        attempt: int | None = None,
        only_if: Iterable[Any] = (),
        message: str | None = None,
        message_from=None,
    ):
        """Compare-and-set: apply ``values`` (and the move to ``to``) only if the job is in ``when``.

        ``to=None`` keeps the status (a progress or cancel-request write). Returns the changed row
        (truthy) or None; on success the change is committed together with its history event.
        """
        allowed = set(when) if to is None else set(when) & sources_of(to)
        conditions = [Job.id == job_id, Job.status.in_([s.value for s in allowed])]
        if attempt is not None:
            conditions.append(Job.attempts == attempt)
        conditions.extend(only_if)
        changes = dict(values, version=Job.version + 1, updated_at=now)
        if to is not None:
            changes["status"] = to.value
        result = db.session.execute(
            update(Job)
            .where(*conditions)
            .values(**changes)
            .returning(*_RETURNED)
            .execution_options(synchronize_session=False)
        )
        row = result.one_or_none()
        if row is None:
            db.session.rollback()
            return None
        if message_from is not None:
            message = message_from(row)
        db.session.add(
            JobEvent(
                job_id=job_id,
                seq=row.version,
                at=now,
                status=row.status,
                percent=row.progress_percent,
                stage=row.progress_stage,
                message=message or row.progress_message,
            )
        )
        db.session.commit()
        self.notifier.publish(job_id)
        return row

    def _by_request_id(self, owner: str, request_id: str) -> Job | None:
        return db.session.scalars(
            select(Job).where(Job.owner == owner, Job.request_id == request_id)
        ).one_or_none()

    @staticmethod
    def _replay(existing: Job, request_hash: str) -> Job:
        if existing.request_hash != request_hash:
            raise RequestIdConflict(
                f"request_id {existing.request_id!r} was already used for job {existing.id} with a "
                "different body; use a new request_id for a different request.",
                job_id=existing.id,
            )
        return existing


def _event_for(job: Job, *, at: datetime, message: str) -> JobEvent:
    return JobEvent(
        job_id=job.id,
        seq=job.version,
        at=at,
        status=job.status,
        percent=job.progress_percent,
        stage=job.progress_stage,
        message=message,
    )
