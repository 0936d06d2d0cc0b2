"""Slow statements on real PostgreSQL: logged with their normalised text and duration, and counted."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from backend import metrics
from backend.extensions import db
from backend.slow_queries import normalise, operation_of

pytestmark = pytest.mark.integration


def slow_count(operation: str) -> float:
    return metrics.DB_SLOW_QUERIES.labels(operation)._value.get()


def test_a_statement_over_slow_query_s_is_logged_with_its_text_and_duration_and_counted(app, caplog):
    caplog.set_level(logging.WARNING, logger="backend.slow_queries")
    before = slow_count("select")
    with app.app_context():
        db.session.execute(text("SELECT pg_sleep(:seconds),\n       :secret AS marker"),
                           {"seconds": 1.05, "secret": "prompt-text-zanzibar"})
        db.session.rollback()

    slow = [record for record in caplog.records if getattr(record, "slow_query", False)]
    assert len(slow) == 1
    assert slow[0].duration_s >= 1.0
    assert slow[0].statement == "SELECT pg_sleep(%(seconds)s), %(secret)s AS marker"
    assert "zanzibar" not in slow[0].getMessage()  # parameters are never logged
    assert slow_count("select") - before == 1


def test_statements_under_the_threshold_are_timed_but_not_logged(app, caplog):
    caplog.set_level(logging.WARNING, logger="backend.slow_queries")
    timed = metrics.DB_QUERY_DURATION.labels("select")
    before = slow_count("select")
    with app.app_context():
        db.session.execute(text("SELECT pg_sleep(0.2)"))
        db.session.rollback()

    assert not [record for record in caplog.records if getattr(record, "slow_query", False)]
    assert slow_count("select") == before
    assert sum(bucket.get() for bucket in timed._buckets) > 0


def test_the_threshold_follows_slow_query_s(config, caplog):
    from backend import create_app

    caplog.set_level(logging.WARNING, logger="backend.slow_queries")
    app = create_app(config.with_overrides(slow_query_s=0.1))
    try:
        with app.app_context():
            db.session.execute(text("SELECT pg_sleep(0.15)"))
            db.session.rollback()
            db.engine.dispose()
    finally:
        create_app(config)  # back to the default threshold for the tests after this one

    assert [record.statement for record in caplog.records if getattr(record, "slow_query", False)] == [
        "SELECT pg_sleep(0.15)"
    ]


@pytest.mark.parametrize(
    ("statement", "operation"),
    [("  select 1", "select"), ("UPDATE jobs SET x=1", "update"), ("VACUUM", "other"), ("", "other")],
)
def test_the_operation_label_is_the_first_keyword_from_a_closed_set(statement, operation):
    assert operation_of(statement) == operation


def test_normalised_text_is_one_bounded_line():
    assert normalise("SELECT a,\n\t b\n  FROM t") == "SELECT a, b FROM t"
    assert len(normalise("SELECT " + "x" * 5000)) == 2000
