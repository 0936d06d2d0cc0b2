"""Retention: finished jobs and their history are deleted once older than the retention period.

Deletion runs in short batches, one transaction each, with a pause between them at least as long as
the batch took, so that a purge of a large backlog never holds locks or the database long enough to
hold up polls (a test measures poll p99 during a 100,000-job purge). ``job_events`` rows go with their job (ON DELETE CASCADE).
A deleted job answers 404 like one that never existed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, select

from .. import metrics
from ..extensions import db
from ..models import Job, utcnow
from .status import TERMINAL

log = logging.getLogger(__name__)

_FINISHED = [status.value for status in TERMINAL]
# A pause between batches gives other transactions the database (and this process's CPU).
DEFAULT_PAUSE_S = 0.05


@dataclass(frozen=True)
class PurgeResult:
    cutoff: datetime
    deleted: int  # jobs (their events went with them); for a dry run, how many would go
    batches: int
    complete: bool  # False when max_batches stopped it with more left
    dry_run: bool = False


def _older_than(cutoff: datetime):
    # finished_at first: it is what ix_jobs_finished_at orders, so the range scan starts there.
    return select(Job.id).where(Job.finished_at < cutoff, Job.status.in_(_FINISHED))


def count_purgeable(cutoff: datetime) -> int:
    count = db.session.scalar(select(func.count()).select_from(_older_than(cutoff).subquery()))
    db.session.rollback()
    return count


def purge_finished(
    older_than: timedelta,
    *,
    batch_size: int = 500,
    max_batches: int | None = None,
    pause_s: float = DEFAULT_PAUSE_S,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PurgeResult:
    """Delete finished jobs whose ``finished_at`` is older than ``older_than``, ``batch_size`` at a time."""
    cutoff = (now or utcnow()) - older_than
    if dry_run:
        return PurgeResult(cutoff, count_purgeable(cutoff), 0, True, dry_run=True)
    deleted = batches = 0
    while max_batches is None or batches < max_batches:
        started_s = time.perf_counter()
        ids = _older_than(cutoff).order_by(Job.finished_at).limit(batch_size)
        removed_ids = db.session.execute(
            delete(Job).where(Job.id.in_(ids.scalar_subquery())).returning(Job.id)
            .execution_options(synchronize_session=False)
        ).scalars().all()
        db.session.commit()
        removed = len(removed_ids)
        if removed:
            # A deleted job must answer 404 at once, not from a status snapshot left behind.
            current_app.extensions["job_service"].snapshots.forget(removed_ids)
        batches += 1
        deleted += removed
        if removed:
            metrics.SWEEP_ACTIONS.labels("purged").inc(removed)
        if removed < batch_size:
            return _done(cutoff, deleted, batches, complete=True)
        if pause_s:
            # At least as long as the batch took: the purge keeps the database busy at most half
            # the time, however loaded the machine is.
            time.sleep(max(pause_s, time.perf_counter() - started_s))
    return _done(cutoff, deleted, batches, complete=False)


def _done(cutoff: datetime, deleted: int, batches: int, *, complete: bool) -> PurgeResult:
    if deleted:
        log.info(
            "retention: deleted %d finished jobs older than %s in %d batches%s",
            deleted, cutoff.isoformat(), batches, "" if complete else " (more left for the next pass)",
            extra={"purged_jobs": deleted},
        )
    return PurgeResult(cutoff, deleted, batches, complete)


class RetentionPass:
    """What the sweep calls every time: a bounded purge at most once per ``every_s``."""

    # A pass holds up the rest of the sweep (stale-job recovery) while it runs, so it is kept to a
    # few batches: at the defaults, 2,500 jobs a minute, 3.6 million a day.
    def __init__(self, *, retention_days: float, batch_size: int, every_s: float = 60.0,
                 max_batches: int = 5, clock=time.monotonic) -> None:
        self.retention = timedelta(days=retention_days)
        self.batch_size = batch_size
        self.every_s = every_s
        self.max_batches = max_batches
        self._clock = clock
        self._last_s = float("-inf")

    def maybe_run(self) -> int:
        """Purge one bounded pass if one is due; returns the jobs deleted."""
        if self._clock() - self._last_s < self.every_s:
            return 0
        self._last_s = self._clock()
        return purge_finished(self.retention, batch_size=self.batch_size, max_batches=self.max_batches).deleted
