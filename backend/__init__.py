"""The AI job service: a Flask application factory."""
from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .config import Config, data_dir

log = logging.getLogger(__name__)


def create_app(config: Config | None = None) -> Flask:
    """Build the app for ``config`` (default: read from the environment)."""
    from . import cli, operations, web
    from .agents import build_agents
    from .api import register_api
    from .extensions import db, migrate
    from .jobs.estimates import DurationEstimator
    from .jobs.service import JobService
    from .jobs.snapshots import build_snapshots
    from .key_cache import KeyCache
    from .notify import build_notifier
    from .queue import build_queue

    config = config or Config.from_env()
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=config.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(config),
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    app.extensions["config"] = config
    _prepare_sqlite_directory(config.database_url)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(data_dir("migrations")))
    queue = build_queue(app, config)
    app.extensions["job_queue"] = queue
    notifier = build_notifier(config)
    app.extensions["job_service"] = JobService(
        agents=build_agents(config),
        queue=queue,
        config=config,
        notifier=notifier,
        snapshots=build_snapshots(config, notifier),
        estimator=DurationEstimator(),
    )
    key_cache = KeyCache(config.key_cache_ttl_s, trusted=notifier.hears_key_revocations)
    notifier.key_revoked_handlers.append(key_cache.forget)
    app.extensions["key_cache"] = key_cache

    # Before the API: its telemetry hooks must see every request, refused ones included.
    operations.init_app(app)
    register_api(app)
    web.register(app)
    cli.register(app)
    return app


def _engine_options(config: Config) -> dict:
    if config.database_url.startswith("sqlite"):
        # The embedded worker writes from other threads while requests read.
        return {"connect_args": {"check_same_thread": False, "timeout": 15}}
    # pre_ping turns a connection killed by a database restart into a fresh one, so no request
    # fails after the restart. It costs one round trip per request (about 15 % of a status poll,
    # measured with bench/run.py); without it the first request of each process after a restart
    # answers 503 (tests/chaos caught that), which is the worse trade.
    return {
        "pool_pre_ping": True,
        # Every process may open pool + overflow connections: docs/runbook.md has the formula
        # that keeps all processes together under PostgreSQL's max_connections.
        "pool_size": config.db_pool_size,
        "max_overflow": config.db_max_overflow,
        "pool_timeout": 5,
        # A database host that stops answering must become a 503 in seconds, not a TCP timeout.
        "connect_args": {"connect_timeout": 3},
    }


def _prepare_sqlite_directory(url: str) -> None:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """WAL lets the in-process worker write while requests read; foreign keys keep history honest."""
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()
