"""Database tables: jobs, their event history, and API keys."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from .extensions import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every database (SQLite keeps no zone, so restore it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a UTC-aware one")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Job(db.Model):
    __tablename__ = "jobs"
    __table_args__ = (
        # The listing query: an owner's jobs newest first. Ids are ULIDs, so id order is creation order.
        Index("ix_jobs_owner_id", "owner", "id"),
        # The idempotency key is unique per owner; NULLs (no request_id) never collide.
        UniqueConstraint("owner", "request_id", name="uq_jobs_owner_request_id"),
        # Sweeps: stale running jobs and unclaimed queued jobs.
        Index("ix_jobs_status_updated_at", "status", "updated_at"),
        # Queue positions: count the queued jobs ahead of one with an index range scan.
        Index("ix_jobs_status_id", "status", "id"),
        # Retention: the purge finds finished jobs older than a cutoff with an index range scan.
        Index("ix_jobs_finished_at", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(30), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(128))
    # SHA-256 of the canonical submitted body, to tell a replay from a conflicting reuse of request_id.
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    progress_percent: Mapped[float] = mapped_column(Float, default=0.0)
    progress_stage: Mapped[str | None] = mapped_column(String(64))
    progress_message: Mapped[str | None] = mapped_column(String(500))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_retryable: Mapped[bool | None] = mapped_column(Boolean)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts a shutting-down worker handed back unfinished; JOB_MAX_ATTEMPTS does not count them.
    # (``attempts`` itself never shrinks: it fences every worker write.)
    handed_back: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    estimated_completion_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a retried job's next attempt is due (it waits in `queued` until then).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the job's latest message was due on the broker; None when sending it failed. The sweep
    # resends a queued job whose message is overdue, closing the gap between the row and the broker.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The Dramatiq message id of the latest message sent for this job. The sweep resends a queued
    # job only when the message tracker says no delivery of this message is left in the broker.
    message_id: Mapped[str | None] = mapped_column(String(36))

    # Not stored: filled in by the status views for queued jobs (how many queued jobs are ahead).
    queue_position = None

    @property
    def progress(self) -> dict[str, Any]:
        return {"percent": self.progress_percent, "stage": self.progress_stage, "message": self.progress_message}

    @property
    def error(self) -> dict[str, Any] | None:
        if self.error_code is None:
            return None
        return {"code": self.error_code, "message": self.error_message, "retryable": bool(self.error_retryable)}


class JobEvent(db.Model):
    """One entry of a job's history; ``seq`` is the job's ``version`` after the change."""

    __tablename__ = "job_events"

    job_id: Mapped[str] = mapped_column(
        String(30), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    percent: Mapped[float] = mapped_column(Float)
    stage: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(500))


class ApiKey(db.Model):
    """An API key; only the SHA-256 of its secret part is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "jobs" keys use the job API; "ops" keys read the operations endpoints (/health/details).
    scope: Mapped[str] = mapped_column(String(16), default="jobs", server_default="jobs")
