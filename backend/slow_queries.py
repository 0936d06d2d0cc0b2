"""Query performance: every SQL statement is timed; those over ``SLOW_QUERY_S`` are logged and counted.

Statements are logged as SQLAlchemy sent them, with placeholders (``%(id_1)s``) and never their
parameters, so no key, input or result can reach the log through here.
"""
from __future__ import annotations

import logging
import re
import time

from sqlalchemy import event
from sqlalchemy.engine import Engine

from . import metrics

log = logging.getLogger(__name__)

MAX_LOGGED_STATEMENT_CHARS = 2000
_WHITESPACE = re.compile(r"\s+")
_KNOWN_OPERATIONS = frozenset({"select", "insert", "update", "delete", "with", "begin", "commit", "rollback"})


def normalise(statement: str) -> str:
    """One line, single-spaced, bounded: the statement's shape as an operator greps for it."""
    return _WHITESPACE.sub(" ", statement).strip()[:MAX_LOGGED_STATEMENT_CHARS]


def operation_of(statement: str) -> str:
    """The first keyword, from a closed set, so the label stays low-cardinality."""
    head = statement.lstrip()[:10].split(None, 1)
    word = head[0].lower() if head else ""
    return word if word in _KNOWN_OPERATIONS else "other"


class SlowQueryWatch:
    """Times statements on every engine of the process (one watch per process; the threshold is
    the latest app's, since all apps of a process share the one configuration)."""

    def __init__(self) -> None:
        self.threshold_s = 1.0
        self._installed = False
        self._timers: dict[str, object] = {}

    def install(self, threshold_s: float) -> None:
        self.threshold_s = threshold_s
        if not self._installed:
            event.listen(Engine, "before_cursor_execute", self._before)
            event.listen(Engine, "after_cursor_execute", self._after)
            self._installed = True

    @staticmethod
    def _before(conn, cursor, statement, parameters, context, executemany) -> None:
        # One statement at a time per connection; a failed one is simply overwritten by the next.
        conn.info["query_started_s"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        started_s = conn.info.pop("query_started_s", None)
        if started_s is None:
            return
        elapsed_s = time.perf_counter() - started_s
        operation = operation_of(statement)
        timer = self._timers.get(operation)
        if timer is None:  # a closed set of labels: looked up once each
            timer = self._timers[operation] = metrics.DB_QUERY_DURATION.labels(operation)
        timer.observe(elapsed_s)
        if elapsed_s >= self.threshold_s:
            metrics.DB_SLOW_QUERIES.labels(operation).inc()
            log.warning(
                "slow query: %.3f s: %s",
                elapsed_s,
                normalise(statement),
                extra={"duration_s": round(elapsed_s, 3), "statement": normalise(statement), "slow_query": True},
            )


watch = SlowQueryWatch()
