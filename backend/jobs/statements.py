"""One statement, one transaction: a job write on PostgreSQL without the BEGIN and COMMIT round trips.

A job write that is a single statement (a data-modifying CTE that changes the row and appends its
history event) is atomic on its own in PostgreSQL. Sent in autocommit it is a transaction of its
own, which saves the BEGIN and the COMMIT: two of a write's four round trips, the pool's pre-ping
and the statement being the others. A write that follows a read in the same transaction (a cancel
reads the job first) keeps that transaction, and SQLite keeps its two statements in an ordinary one.
"""
from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import bindparam, insert, select

from ..extensions import db
from ..models import Job, JobEvent, UTCDateTime


# What a write returns: what the worker's moves need, and the job's whole status document, so the
# status snapshot of the change is written without reading the row again.
RETURNED = (
    Job.id,
    Job.owner,
    Job.version,
    Job.status,
    Job.attempts,
    Job.handed_back,
    Job.agent,
    Job.input,
    Job.progress_percent,
    Job.progress_stage,
    Job.progress_message,
    Job.cancel_requested_at,
    Job.created_at,
    Job.started_at,
    Job.finished_at,
    Job.updated_at,
    Job.estimated_completion_at,
    Job.error_code,
    Job.error_message,
    Job.error_retryable,
)
# What the history event of a write is made of, returned whatever ``RETURNED`` holds.
EVENT_SOURCE = (Job.id, Job.version, Job.status, Job.progress_percent, Job.progress_stage)


def returned_with_event(event_message) -> list:
    """What a job write returns: ``RETURNED``, the rest of ``EVENT_SOURCE``, and the history event's
    message (a SQL expression over the changed row) as ``event_message``."""
    keys = {column.key for column in RETURNED}
    return [*RETURNED, *(c for c in EVENT_SOURCE if c.key not in keys), event_message.label("event_message")]


def on_postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


def in_transaction() -> bool:
    """Whether the session of this context has a transaction open, without creating the session:
    a submit or a worker's write that only sends statements alone never needs one (building it was
    2 % of a submit's CPU)."""
    return db.session.registry.has() and db.session().in_transaction()


def autocommit_next_statement() -> bool:
    """Send the session's next statement in autocommit when no transaction is open (PostgreSQL only).

    Only for a caller whose next statement is the whole transaction; its ``commit()`` then costs
    nothing, and the pool restores the connection's usual mode when the session gives it back.
    Returns whether it did.
    """
    if in_transaction() or not on_postgresql():
        return False
    db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return True


def execute_alone(statement, params: dict):
    """Execute a statement that is a whole transaction by itself; return the one row it returned
    (None if none, or if it returns no rows).

    With no transaction open in the session (the usual case for a worker's write or a submit), on a
    connection of its own in autocommit, past the session's bookkeeping (PostgreSQL only); else in
    the session's transaction, which the caller commits (``commit_if_open``).
    """
    if in_transaction() or not on_postgresql():
        return _the_row(db.session.execute(statement, params))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # The row is read before the connection goes back: no buffered copy of the result is made.
        return _the_row(connection.execute(statement, params))


def _the_row(result):
    # A statement with no RETURNING (a submit's) has no rows to read; the session's ORM results
    # always have rows to read.
    return result.one_or_none() if getattr(result, "returns_rows", True) else None


def commit_if_open() -> None:
    """Commit the session's transaction if one is open. After ``execute_alone`` sent its statement in
    autocommit none is, and committing a session with nothing open still costs a transaction's
    whole life cycle in SQLAlchemy (about 5 % of a worker's job)."""
    if in_transaction():
        db.session.commit()


_EVENT_INSERT = insert(JobEvent).values(
    job_id=bindparam("job_id"), seq=bindparam("seq"), at=bindparam("at", type_=UTCDateTime()),
    status=bindparam("status"), percent=bindparam("percent"), stage=bindparam("stage"), message=bindparam("message"),
)


def change_with_event_postgresql(change, returned: list, before: list):
    """The change and its event in one statement: ``WITH moved AS (UPDATE ... RETURNING ...),
    event AS (INSERT INTO job_events SELECT ... FROM moved) SELECT * FROM moved``.

    Values from before the change come from the row locked (``FOR UPDATE``) in the UPDATE's
    ``FROM``, so they are those of the very version the change replaced.
    """
    if before:
        prior = (select(Job.id, *before).where(Job.id == bindparam("job_id")).with_for_update()
                 .subquery("prior"))
        change = change.where(Job.id == prior.c.id)
        returned = [*returned, *(prior.c[column.key].label(f"before_{column.key}") for column in before)]
    moved = change.returning(*returned).cte("moved")
    event = insert(JobEvent).from_select(
        ["job_id", "seq", "at", "status", "percent", "stage", "message"],
        select(moved.c.id, moved.c.version, bindparam("now", type_=UTCDateTime()), moved.c.status,
               moved.c.progress_percent, moved.c.progress_stage, moved.c.event_message),
    ).cte("event")
    return select(moved).add_cte(event)


def change_then_event(statements: tuple, params: dict):
    """The change, then its event, in the session's transaction (SQLite: no data-modifying CTEs)."""
    change, prior_select = statements
    prior = None
    if prior_select is not None:
        prior = db.session.execute(prior_select, params).one_or_none()
        if prior is None:
            return None
    row = db.session.execute(change, params).one_or_none()
    if row is None:
        return None
    db.session.execute(_EVENT_INSERT, dict(job_id=params["job_id"], seq=row.version, at=params["now"],
                                           status=row.status, percent=row.progress_percent,
                                           stage=row.progress_stage, message=row.event_message))
    if prior is None:
        return row
    return SimpleNamespace(**row._asdict(), **{f"before_{key}": value for key, value in prior._asdict().items()})
