"""Completion estimates: from the current attempt's progress and the agent's recent run times.

They are estimates, stored when progress is written (so a status read costs nothing extra) and
documented as such: a job may finish before or after.
"""
from __future__ import annotations

import statistics
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import select

from ..extensions import db
from ..models import Job
from .statements import in_transaction
from .status import JobStatus

SAMPLE_SIZE = 20
CACHE_TTL_S = 30.0
# Below this much progress the agent's own pace says little; lean on its history instead.
MIN_PERCENT_FOR_PACE = 5.0


class DurationEstimator:
    """The median run time of an agent's recent successful jobs, cached per process."""

    def __init__(self, *, clock=time.monotonic) -> None:
        self._clock = clock
        # Held while one thread reads an agent's history: the other threads that find it stale
        # wait for that read instead of each sending the same query.
        self._refresh_lock = threading.Lock()
        self._cache: dict[str, tuple[float, float | None]] = {}

    def typical_duration_s(self, agent: str) -> float | None:
        cached = self._fresh(agent)
        if cached is not None:
            return cached[1]
        with self._refresh_lock:
            cached = self._fresh(agent)
            if cached is not None:
                return cached[1]
            read_alone = not in_transaction()
            rows = db.session.execute(
                select(Job.started_at, Job.finished_at)
                .where(Job.status == JobStatus.SUCCEEDED.value, Job.agent == agent)
                .order_by(Job.updated_at.desc())
                .limit(SAMPLE_SIZE)
            ).all()
            if read_alone:
                # End the read's transaction: a worker holds none between its writes, and its next
                # write (a claim) is then sent alone in autocommit, not in this transaction.
                db.session.rollback()
            durations = [(f - s).total_seconds() for s, f in rows if s is not None and f is not None]
            typical = statistics.median(durations) if durations else None
            self._cache[agent] = (self._clock(), typical)
        return typical

    def _fresh(self, agent: str) -> tuple[float, float | None] | None:
        cached = self._cache.get(agent)  # one dict read: atomic, no lock needed
        if cached is not None and self._clock() - cached[0] < CACHE_TTL_S:
            return cached
        return None

    def estimate(self, agent: str, started_at: datetime, now: datetime, percent: float) -> datetime | None:
        """When the current attempt should finish: its pace, blended with history by progress."""
        typical_s = self.typical_duration_s(agent)
        by_history = started_at + timedelta(seconds=typical_s) if typical_s is not None else None
        if percent < MIN_PERCENT_FOR_PACE:
            return max(by_history, now) if by_history is not None else None
        elapsed_s = (now - started_at).total_seconds()
        by_pace = now + timedelta(seconds=elapsed_s * (100.0 - percent) / percent)
        if by_history is None:
            return by_pace
        weight = percent / 100.0
        blended = by_history + (by_pace - by_history) * weight
        return max(blended, now)
