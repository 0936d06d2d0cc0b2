"""The migrations build exactly the schema the models describe."""
from __future__ import annotations

import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from backend import create_app
from backend.config import Config
from backend.extensions import db
from tests.conftest import PG_ADMIN_DSN, PG_URL_TEMPLATE

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_database(postgres_url):  # postgres_url: PostgreSQL is reachable (or the test skips/fails)
    name = f"aijobs_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield PG_URL_TEMPLATE.format(name=name)
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upgrading_an_empty_postgres_database_leaves_no_difference_from_the_models(empty_database):
    app = create_app(Config(database_url=empty_database))
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
        db.engine.dispose()

    assert diff == []


def test_the_migrations_downgrade_to_an_empty_database(empty_database):
    app = create_app(Config(database_url=empty_database))
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        tables = set(inspect(db.engine).get_table_names())
        db.engine.dispose()

    assert tables <= {"alembic_version"}
