"""The cluster's state as operators see it: backlog, jobs by status, live workers.

A few index-served queries, cached per process for ``CACHE_S`` so that frequent scrapes and an open
ops page cost the database a handful of statements every few seconds, whatever the traffic.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, text

from . import metrics, workers_alive
from .extensions import db
from .jobs.status import JobStatus
from .models import Job, utcnow

CACHE_S = 5.0
# Finished jobs are counted over this recent window (counting all of them would scan the table).
RECENT_S = 15 * 60
_WAITING = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
_FINISHED = (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)


@dataclass(frozen=True)
class ClusterState:
    read_at: datetime
    waiting: dict[str, int]  # queued and running now
    finished_recently: dict[str, int]  # reached each terminal status within RECENT_S
    oldest_queued_age_s: float
    workers: list[workers_alive.LiveWorker] = field(default_factory=list)
    slow_statements_running: list[dict] = field(default_factory=list)


def read_state(heartbeat_timeout_s: float, slow_query_s: float) -> ClusterState:
    now = utcnow()
    waiting = dict.fromkeys(_WAITING, 0)
    # Each status is one index range count (ix_jobs_status_id), never a scan of finished jobs.
    for status in _WAITING:
        waiting[status] = db.session.scalar(select(func.count()).select_from(Job).where(Job.status == status))
    recent_cutoff = now - timedelta(seconds=RECENT_S)
    finished = {
        status: db.session.scalar(
            select(func.count()).select_from(Job).where(Job.status == status, Job.updated_at >= recent_cutoff)
        )
        for status in _FINISHED
    }
    # A queued job waiting for its retry backoff is not late until its attempt is due.
    ready_since = db.session.scalar(
        select(func.min(func.coalesce(Job.next_attempt_at, Job.updated_at))).where(
            Job.status == JobStatus.QUEUED.value
        )
    )
    oldest_s = max(0.0, (now - _aware(ready_since)).total_seconds()) if ready_since is not None else 0.0
    workers = workers_alive.alive(heartbeat_timeout_s, now=now)
    slow = _slow_statements_running(slow_query_s)
    db.session.rollback()  # end the read transaction; the caller may hold the session longer
    return ClusterState(now, waiting, finished, round(oldest_s, 3), workers, slow)


def _aware(value: datetime) -> datetime:
    """SQLite's min() of a timestamp column comes back as a naive value (or text): read it as UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _slow_statements_running(slow_query_s: float) -> list[dict]:
    """Statements of this database running longer than the threshold right now (PostgreSQL only)."""
    if db.engine.dialect.name != "postgresql":
        return []
    rows = db.session.execute(
        text(
            "SELECT pid, state, EXTRACT(EPOCH FROM now() - query_start) AS running_s, left(query, 300) AS query "
            "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND state = 'active' AND query_start < now() - make_interval(secs => :threshold_s) "
            "ORDER BY query_start LIMIT 10"
        ),
        {"threshold_s": slow_query_s},
    ).all()
    return [
        {"pid": row.pid, "running_s": round(float(row.running_s), 3), "statement": " ".join(row.query.split())}
        for row in rows
    ]


class StateCache:
    """``read_state`` at most once per ``CACHE_S`` per process; also refreshes the state gauges."""

    def __init__(self, *, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state: ClusterState | None = None
        self._read_at_s = float("-inf")

    def get(self, heartbeat_timeout_s: float, slow_query_s: float) -> ClusterState:
        with self._lock:
            if self._state is None or self._clock() - self._read_at_s >= CACHE_S:
                try:
                    self._state = read_state(heartbeat_timeout_s, slow_query_s)
                except Exception:
                    db.session.rollback()
                    raise
                self._read_at_s = self._clock()
                _set_gauges(self._state)
            return self._state


def _set_gauges(state: ClusterState) -> None:
    for status, count in state.waiting.items():
        metrics.JOBS_BY_STATUS.labels(status).set(count)
    metrics.OLDEST_QUEUED_AGE.set(state.oldest_queued_age_s)
    metrics.WORKERS_ALIVE.set(len(state.workers))
