"""Fixtures: real PostgreSQL and Redis (started by `make test`), apps layered app -> client -> key.

Tests that need the real services skip when they are unreachable on a laptop, but fail under CI.
"""
from __future__ import annotations

import os
import uuid
from typing import Iterator

import dramatiq
import psycopg
import pytest
import redis as redis_lib
from sqlalchemy import text

from backend import create_app
from backend.config import Config
from backend.extensions import db

PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL_TEMPLATE = os.environ.get(
    "TEST_PG_URL_TEMPLATE", "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
# The second broker (tests/services.sh starts it). Tests that pass through the broker choose one
# with `@pytest.mark.parametrize("broker_kind", BROKERS)`; every other test uses Redis.
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
BROKERS = ("redis", "rabbitmq")
IN_CI = os.environ.get("CI") == "true"


def _unavailable(what: str, error: Exception):
    message = f"{what} is not reachable: {error}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway database for the session, upgraded with the real migrations."""
    name = f"aijobs_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_URL_TEMPLATE.format(name=name)
    app = create_app(Config(database_url=url, redis_url=None))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    try:
        yield url
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis_lib.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis_lib.RedisError as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    import pika

    try:
        pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL + "?connection_attempts=1&socket_timeout=2")).close()
    except pika.exceptions.AMQPError as exc:
        _unavailable("RabbitMQ", exc)
    return RABBITMQ_URL


@pytest.fixture
def broker_kind() -> str:
    """The broker under test: "redis" unless a test parametrizes it."""
    return "redis"


@pytest.fixture
def broker_url(request, broker_kind: str) -> str | None:
    """BROKER_URL for the broker under test; None means the Redis of REDIS_URL (the default)."""
    return request.getfixturevalue("rabbitmq_url") if broker_kind == "rabbitmq" else None


@pytest.fixture
def config(postgres_url: str, redis_url: str, broker_url: str | None) -> Config:
    return Config(
        database_url=postgres_url,
        redis_url=redis_url,
        broker_url=broker_url,
        retry_backoff_base_ms=50,
        retry_backoff_max_ms=200,
    )


@pytest.fixture
def app(config: Config):
    """The production shape: PostgreSQL and the Redis broker, emptied before each test."""
    app = create_app(config)
    redis_lib.Redis.from_url(config.redis_url).flushdb()
    if config.broker_kind == "rabbitmq":
        # RabbitMQ's queues outlive a test: start each one with them empty.
        app.extensions["job_queue"].broker.flush_all()
    with app.app_context():
        db.session.execute(text("TRUNCATE job_events, jobs, api_keys, worker_processes"))
        db.session.commit()
    yield app
    app.extensions["job_service"].notifier.close()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def worker(app) -> Iterator[dramatiq.Worker]:
    """A real Dramatiq worker consuming the real Redis broker, in this process."""
    broker = app.extensions["job_queue"].broker
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def client(app):
    return app.test_client()


def make_key(app, owner: str) -> str:
    from backend import keys

    with app.app_context():
        return keys.create_key(owner).key


@pytest.fixture
def api_key(app) -> str:
    return make_key(app, "alice")


@pytest.fixture
def auth(api_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}
