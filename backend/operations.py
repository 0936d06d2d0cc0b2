"""Wires the operations pieces into an app: telemetry, slow-query watch, worker liveness and log
context on the broker, ``/metrics``, and the ``/ops`` page. docs/operations.md is the operator's guide.
"""
from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, send_from_directory

from . import metrics, slow_queries, telemetry
from .config import data_dir
from .extensions import db
from .logs import LogContextMiddleware
from .ops_state import StateCache
from .ops_window import OpsWindow
from .workers_alive import WorkerLiveness

OPS_PAGE_DIR = data_dir("client") / "ops"
bp = Blueprint("operations", __name__)


@bp.get("/metrics")
def metrics_exposition():
    """Prometheus text exposition; the state gauges and health checks are refreshed first."""
    from . import health_checks

    extensions = current_app.extensions
    config = extensions["config"]
    extensions["ops_window"].ensure_sampling()
    health_checks.run_checks()
    try:
        extensions["ops_state"].get(config.heartbeat_timeout_s, config.slow_query_s)
    except Exception:  # the database is down: serve the rest; health_check_up{check="database"} says so
        db.session.rollback()
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})


@bp.get("/ops")
def ops_page():
    return send_from_directory(OPS_PAGE_DIR, "index.html", max_age=0)


@bp.get("/ops/<path:filename>")
def ops_asset(filename: str):
    return send_from_directory(OPS_PAGE_DIR, filename, max_age=0)


def init_app(app: Flask) -> None:
    """Call in ``create_app`` after the queue is built and before the API registers its hooks."""
    from .queue import RUN_JOB

    config = app.extensions["config"]
    telemetry.init_app(app)
    slow_queries.watch.install(config.slow_query_s)
    queue = app.extensions["job_queue"]
    queue.broker.add_middleware(LogContextMiddleware(frozenset({RUN_JOB})))
    queue.broker.add_middleware(
        WorkerLiveness(app, interval_s=config.heartbeat_interval_s, running_jobs=lambda: len(queue.vitals.running()))
    )
    app.extensions["ops_state"] = StateCache()
    app.extensions["ops_window"] = OpsWindow()
    app.register_blueprint(bp)
