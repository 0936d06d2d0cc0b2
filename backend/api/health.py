"""Liveness and readiness for operators and load balancers."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from .. import health_checks
from .openapi import ANY_ROUTE_ERRORS, documents_errors, headers
from .schemas import HealthSchema

_HEALTH_HEADERS = headers("Cache-Control", required=("Cache-Control",))

blp = Blueprint("health", __name__, url_prefix="/health", description="Service health.")


@blp.route("/live")
class Live(MethodView):
    @blp.response(
        200, HealthSchema, headers=_HEALTH_HEADERS, example={"status": "ok", "checks": {}}
    )
    @blp.doc(security=[], operationId="getLiveness")
    @documents_errors(blp, always=ANY_ROUTE_ERRORS)
    def get(self):
        """Check that the process answers

        For liveness probes: no key needed, no dependency checked. Never cached.
        """
        return {"status": "ok", "checks": {}}


@blp.route("/ready")
class Ready(MethodView):
    @blp.response(
        200, HealthSchema, headers=_HEALTH_HEADERS,
        example={"status": "ok", "checks": {"database": {"ok": True, "latency_ms": 0.4},
                                            "broker": {"ok": True, "latency_ms": 0.2},
                                            "workers": {"ok": True, "latency_ms": 0.5, "alive": 2,
                                                        "decides_readiness": False}}},
    )
    @blp.doc(security=[], operationId="getReadiness")
    @blp.alt_response(
        503, schema=HealthSchema, headers=_HEALTH_HEADERS, description="A dependency is unreachable.",
        example={"status": "unavailable", "failing": ["database"],
                 "checks": {"database": {"ok": False, "error": "OperationalError", "latency_ms": 3001.2},
                            "broker": {"ok": True, "latency_ms": 0.2}}},
    )
    @documents_errors(blp, always=ANY_ROUTE_ERRORS)
    def get(self):
        """Check that the database and the broker are reachable

        For readiness probes: no key needed. 503 names the failing checks. Never cached. Each check
        has its latency; ``workers`` (live worker processes) is reported but never fails readiness.
        """
        ok, checks = health_checks.run_checks()
        failing = [name for name in health_checks.DECIDING if not checks[name]["ok"]]
        body = {"status": "ok" if ok else "unavailable", "checks": checks}
        if failing:
            body["failing"] = failing
        return body, 200 if ok else 503
