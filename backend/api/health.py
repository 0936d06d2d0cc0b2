"""Liveness and readiness for operators and load balancers."""
from __future__ import annotations

import time

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import text

from ..extensions import db
from .schemas import HealthSchema

blp = Blueprint("health", __name__, url_prefix="/health", description="Service health.")


@blp.route("/live")
class Live(MethodView):
    @blp.response(200, HealthSchema)
    @blp.doc(security=[])
    def get(self):
        """The process answers"""
        return {"status": "ok", "checks": {}}


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # any failure of a dependency means not ready, whatever its type
        return {"ok": False, "error": type(exc).__name__, "latency_ms": _ms_since(started)}
    return {"ok": True, "latency_ms": _ms_since(started)}


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


@blp.route("/ready")
class Ready(MethodView):
    @blp.response(200, HealthSchema)
    @blp.doc(security=[])
    @blp.alt_response(503, schema=HealthSchema, description="A dependency is unreachable.")
    def get(self):
        """The database and the broker are reachable"""
        checks = {"database": _timed(_check_database), "broker": _timed(_check_broker)}
        ok = all(check["ok"] for check in checks.values())
        failing = [name for name, check in checks.items() if not check["ok"]]
        body = {"status": "ok" if ok else "unavailable", "checks": checks}
        if failing:
            body["failing"] = failing
        return body, 200 if ok else 503
