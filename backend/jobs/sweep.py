"""The sweep: what no live worker will do. One process at a time runs it (see ``backend.vitals``).

- A running job whose heartbeat went stale lost its worker: it is requeued while attempts remain,
  failed ``worker_lost`` after the last one, or cancelled if a cancel was requested.
- A queued job that carries a cancel request (one raced a requeue) is ended ``cancelled``.
- A queued job whose message is gone from the broker is sent again: never sent (the broker was
  down), dead-lettered, or lost with Redis. A message that still waits in the broker, however long
  the backlog, is left alone, so a backlog does not feed itself with duplicates.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select, update

from ..extensions import db
from ..models import Job, utcnow
from .status import JobStatus
from .transitions import Transitions


class Sweep:
    def __init__(self, *, transitions: Transitions, messages, config) -> None:
        self.transitions = transitions
        self.messages = messages
        self.config = config

    def run_once(self, *, judge_heartbeats: bool = True) -> dict[str, int]:
        """One pass of every duty; returns what it did. ``judge_heartbeats=False`` skips the stale
        check (right after a database outage, when no worker could write its heartbeat)."""
        counts = {"requeued": 0, "failed": 0, "cancelled": 0}
        if judge_heartbeats:
            counts = self.reap_stale_running()
        counts["cancelled"] += self.cancel_requested_queued()
        # Dramatiq hands a dead worker's prefetched messages back only in a maintenance pass, which
        # otherwise happens by chance; asking for it here bounds that wait by the heartbeat timeout.
        self.messages.queue.requeue_from_dead_workers()
        counts["resent"] = self.resend_unclaimed()
        return counts

    def reap_stale_running(self, *, limit: int = 100) -> dict[str, int]:
        """Jobs whose worker stopped beating: cancel, requeue or fail them (returns the counts)."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self.config.heartbeat_timeout_s)
        stale = db.session.execute(
            select(Job.id, Job.agent, Job.attempts, Job.handed_back, Job.cancel_requested_at)
            .where(Job.status == JobStatus.RUNNING.value, Job.heartbeat_at < cutoff)
            .order_by(Job.heartbeat_at)
            .limit(limit)
        ).all()
        db.session.rollback()
        counts = {"requeued": 0, "failed": 0, "cancelled": 0}
        for job_id, agent, attempt, handed_back, cancel_requested_at in stale:
            lost = f"The worker running attempt {attempt} stopped responding"
            if cancel_requested_at is not None:
                moved = self.transitions.write(
                    job_id,
                    to=JobStatus.CANCELLED,
                    attempt=attempt,
                    values={"finished_at": now, "estimated_completion_at": None},
                    message=f"{lost}; it was being cancelled, so it is cancelled",
                    now=now,
                )
                counts["cancelled"] += moved is not None
            elif attempt - handed_back < self.config.max_attempts:
                # A cancel that lands after the read above wins at the next sweep.
                counts["requeued"] += self.transitions.requeue(
                    job_id,
                    agent,
                    attempt=attempt,
                    values={
                        "error_code": "worker_lost",
                        "error_message": f"{lost}; the job was queued again.",
                        "error_retryable": True,
                        "progress_stage": "requeued",
                        "enqueued_at": now,
                    },
                    message=f"{lost}; queued again",
                    now=now,
                )
            else:
                counts["failed"] += self.transitions.end_failed(
                    job_id,
                    "worker_lost",
                    f"{lost}; all {attempt - handed_back} attempts were lost with their workers, so the job is "
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
            cancelled += self.transitions.write(
                job_id,
                to=JobStatus.CANCELLED,
                when=[JobStatus.QUEUED],
                values={"finished_at": now, "next_attempt_at": None, "estimated_completion_at": None},
                message="Cancelled before it started again",
                now=now,
            ) is not None
        return cancelled

    def resend_unclaimed(self, *, limit: int = 500) -> int:
        """Send again the queued jobs whose message the broker no longer holds; returns how many.

        A job is looked at once its message has been due for ``queued_requeue_after_s``. If the
        broker still holds a delivery of it (waiting in a backlog, delayed, or prefetched by a live
        worker), the job is only marked as checked; otherwise it gets a new message.
        """
        now = utcnow()
        overdue = now - timedelta(seconds=self.config.queued_requeue_after_s)
        rows = db.session.execute(
            select(Job.id, Job.agent, Job.message_id, Job.enqueued_at)
            .where(
                Job.status == JobStatus.QUEUED.value,
                Job.cancel_requested_at.is_(None),
                or_(Job.enqueued_at.is_(None), Job.enqueued_at < overdue),
            )
            .order_by(Job.id)
            .limit(limit)
        ).all()
        db.session.rollback()
        if not rows:
            return 0
        sent = [row.message_id for row in rows if row.enqueued_at is not None and row.message_id]
        waiting = self.messages.outstanding(sent) if sent else set()
        still_there = {row.id for row in rows if row.message_id in waiting and row.enqueued_at is not None}
        if still_there:
            # Not a visible change: no version bump. Checked again one requeue period from now.
            db.session.execute(
                update(Job)
                .where(Job.id.in_(sorted(still_there)), Job.status == JobStatus.QUEUED.value)
                .values(enqueued_at=now)
                .execution_options(synchronize_session=False)
            )
            db.session.commit()
        resent = 0
        for row in rows:
            if row.id in still_there:
                continue
            message = self.messages.new(row.id, row.agent)
            swapped = db.session.execute(
                update(Job)
                .where(
                    Job.id == row.id,
                    Job.status == JobStatus.QUEUED.value,
                    Job.cancel_requested_at.is_(None),
                    # A retry or requeue may have sent a newer message since the read above.
                    Job.message_id.is_(None) if row.message_id is None else Job.message_id == row.message_id,
                )
                .values(enqueued_at=now, message_id=message.message_id)
                .execution_options(synchronize_session=False)
            ).rowcount
            db.session.commit()
            if swapped:
                resent += self.messages.send(message)
        return resent
