"""One statement, one transaction: a job write on PostgreSQL without the BEGIN and COMMIT round trips.

A job write that is a single statement (a data-modifying CTE that changes the row and appends its
history event) is atomic on its own in PostgreSQL. Sent in autocommit it is a transaction of its
own, which saves the BEGIN and the COMMIT: two of a write's four round trips, the pool's pre-ping
and the statement being the others. A write that follows a read in the same transaction (a cancel
reads the job first) keeps that transaction, and SQLite keeps its two statements in an ordinary one.
"""
from __future__ import annotations

from ..extensions import db


def on_postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


def autocommit_next_statement() -> bool:
    """Send the session's next statement in autocommit when no transaction is open (PostgreSQL only).

    Only for a caller whose next statement is the whole transaction; its ``commit()`` then costs
    nothing, and the pool restores the connection's usual mode when the session gives it back.
    Returns whether it did.
    """
    if db.session().in_transaction() or not on_postgresql():
        return False
    db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return True


def execute_alone(statement, params: dict):
    """Execute a statement that is a whole transaction by itself, and return its result (buffered).

    With no transaction open in the session (the usual case for a worker's write or a submit), on a
    connection of its own in autocommit, past the session's bookkeeping (PostgreSQL only); else in
    the session's transaction, which the caller commits.
    """
    if db.session().in_transaction() or not on_postgresql():
        return db.session.execute(statement, params)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        result = connection.execute(statement, params)
        return result.freeze()() if result.returns_rows else result
