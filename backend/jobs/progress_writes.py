"""The progress writes of a worker's running jobs, sent as one statement per wave.

Jobs started together report together: a worker process running many jobs gets their progress
writes in waves. ``Transitions.record_progress`` hands each one (on PostgreSQL, outside any open
transaction) to this process's ``ProgressWrites``, whose writer thread (``grouped.py``) sends every
write waiting at that moment as one ``UPDATE … FROM unnest(…)`` with their history events, then
stores all their status snapshots and signals in one Redis call (docs/performance.md, item 18).

Each write is fenced as ``attempt_owns_job`` fences a single one (running, and the same attempt),
so a superseded attempt in a group changes nothing and gets no row back, while the others land.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer, String, bindparam, func, update
from sqlalchemy.dialects.postgresql import ARRAY

from ..extensions import db
from ..models import Job, UTCDateTime, utcnow
from .grouped import GroupedWrites
from .snapshots import StatusSnapshot
from .statements import change_with_event_postgresql, returned_with_event
from .status import JobStatus


def _progress_of_many():
    """One row of arrays per write, as ``Transitions.write`` makes a progress write one at a time (no
    status move; the event's message is the progress message). The arrays' names are not the
    table's: an UPDATE's parameter named like a column (``attempts``) sets it."""
    item = func.unnest(
        bindparam("item_ids", type_=ARRAY(String)), bindparam("item_attempts", type_=ARRAY(Integer)),
        bindparam("item_percents", type_=ARRAY(Float)), bindparam("item_stages", type_=ARRAY(String)),
        bindparam("item_messages", type_=ARRAY(String)), bindparam("item_estimates", type_=ARRAY(UTCDateTime())),
    ).table_valued("id", "attempt", "percent", "stage", "message", "estimate").render_derived(name="item")
    now = bindparam("now", type_=UTCDateTime())
    change = (
        update(Job)
        .where(Job.id == item.c.id, Job.status == JobStatus.RUNNING.value, Job.attempts == item.c.attempt)
        .values(progress_percent=item.c.percent, progress_stage=item.c.stage, progress_message=item.c.message,
                estimated_completion_at=item.c.estimate, heartbeat_at=now, version=Job.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return change_with_event_postgresql(change, returned_with_event(Job.progress_message), [])


PROGRESS_OF_MANY = _progress_of_many()


class ProgressWrites(GroupedWrites):
    """``write((claim, values))`` returns the job's changed row, or None where the attempt no longer
    owns the job; ``values`` are ``record_progress``'s (the heartbeat and update time are the
    group's, taken when it is sent)."""

    def __init__(self, snapshots) -> None:
        super().__init__(self._send, name="job-progress-writes")
        self._snapshots = snapshots

    def _send(self, writes: list[tuple[Any, dict[str, Any]]]) -> list[Any]:
        params = {
            "item_ids": [claim.job_id for claim, _ in writes], "item_attempts": [claim.attempt for claim, _ in writes],
            "item_percents": [values["progress_percent"] for _, values in writes],
            "item_stages": [values["progress_stage"] for _, values in writes],
            "item_messages": [values["progress_message"] for _, values in writes],
            "item_estimates": [values["estimated_completion_at"] for _, values in writes],
            "now": utcnow(),
        }
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            rows = {row.id: row for row in connection.execute(PROGRESS_OF_MANY, params)}
        # After the commit, never before: a snapshot or a wake-up must not show an uncommitted change.
        self._snapshots.committed_many([StatusSnapshot.of(row) for row in rows.values()])
        return [rows.get(claim.job_id) for claim, _ in writes]
