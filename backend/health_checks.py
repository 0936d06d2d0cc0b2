"""The readiness checks, each timed: database, broker, workers alive.

``database`` and ``broker`` decide readiness: without them this process cannot answer. ``workers``
is reported but never fails readiness: a web process with no live worker still answers polls and
accepts jobs (they wait in the queue), and taking every web process out of a load balancer for it
would turn a backlog into an outage. The ``WorkersDown`` alert covers it instead.
"""
from __future__ import annotations

import time

from flask import current_app
from sqlalchemy import text

from . import metrics
from .extensions import db

DECIDING = ("database", "broker")


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        extra = check() or {}
    except Exception as exc:  # any failure of a dependency means not ready, whatever its type
        db.session.rollback()
        return {"ok": False, "error": type(exc).__name__, "latency_ms": _ms_since(started)}
    ok = extra.pop("ok", True)
    return {"ok": ok, "latency_ms": _ms_since(started), **extra}


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _check_database() -> None:
    try:
        db.session.execute(text("SELECT 1"))
    finally:
        db.session.rollback()


def _check_broker() -> None:
    broker = current_app.extensions["job_queue"].broker
    client = getattr(broker, "client", None)
    if client is not None:  # Redis; the embedded broker lives in this process and is always up
        client.ping()
    elif hasattr(broker, "channels"):  # RabbitMQ: this thread's connection, opened on first use
        try:
            broker.connection.process_data_events(time_limit=0)
        except Exception:
            del broker.connection  # a dead connection is never reused; the next check reconnects
            raise


def _check_workers() -> dict:
    from . import workers_alive

    config = current_app.extensions["config"]
    try:
        alive = len(workers_alive.alive(config.heartbeat_timeout_s))
    finally:
        db.session.rollback()
    return {"ok": alive > 0, "alive": alive, "decides_readiness": False}


def run_checks() -> tuple[bool, dict[str, dict]]:
    """(ready, checks): ready when every deciding check passed. Also sets the health gauges."""
    checks = {"database": _timed(_check_database), "broker": _timed(_check_broker)}
    checks["workers"] = _timed(_check_workers) if checks["database"]["ok"] else {
        "ok": False, "error": "database unavailable", "latency_ms": 0.0, "decides_readiness": False,
    }
    for name, check in checks.items():
        metrics.HEALTH_CHECK_UP.labels(name).set(1 if check["ok"] else 0)
        metrics.HEALTH_CHECK_LATENCY.labels(name).set(check["latency_ms"] / 1000)
    return all(checks[name]["ok"] for name in DECIDING), checks
