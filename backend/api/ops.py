"""``GET /health/details``: what the ops page shows, for ops-scoped keys only."""
from __future__ import annotations

import marshmallow as ma
from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from .. import health_checks, keys
from ..extensions import db
from ..models import ApiKey, utcnow
from ..ops_state import RECENT_S
from .openapi import ANY_ROUTE_ERRORS, documents_errors, headers
from .problems import problem

blp = Blueprint("ops", __name__, url_prefix="/health", description="Operations: details for the ops page.")

_CHALLENGE = 'Bearer realm="ai-jobs-ops"'


# The bounds the document promises for counts and durations (OWASP API4: every integer is bounded).
_COUNT = {"format": "int64", "minimum": 0, "maximum": 2**53 - 1}


class OpsDetailsSchema(ma.Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "unavailable"]),
                           metadata={"description": "ok or unavailable, as /health/ready."})
    generated_at = fields.DateTime(required=True, metadata={"maxLength": 40})
    checks = fields.Dict(required=True, keys=fields.String(), values=fields.Dict(),
                         metadata={"description": "The readiness checks, each with latency_ms."})
    workers = fields.Dict(required=True, metadata={"description": "alive, heartbeat_timeout_s, processes."})
    queue = fields.Dict(required=True, metadata={"description": "depth, running, oldest_queued_age_s."})
    jobs_by_status = fields.Dict(required=True, keys=fields.String(), values=fields.Integer(metadata=_COUNT))
    finished_window_s = fields.Integer(required=True, metadata=_COUNT)
    window = fields.Dict(required=True, metadata={"description": "Polls, recoveries, sweep and slow queries "
                                                                 "over the last window_s (this host)."})
    window_s = fields.Integer(required=True, metadata=_COUNT)
    points = fields.List(fields.Dict(), required=True,
                         metadata={"description": "The window in sample steps.", "maxItems": 10_000})
    slow_queries = fields.Dict(required=True, metadata={"description": "threshold_s and statements running now."})


def _require_ops_key():
    """401 without a valid key, 403 with a valid key of another scope; None when allowed."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    config = current_app.extensions["config"]
    caller = None
    if scheme.lower() == "bearer" and token.strip():
        # The embedded mode's development key is a job key: known (so 403, not 401), never ops.
        caller = keys.owner_for(token.strip(), dev_key=config.dev_api_key if config.embedded else None,
                                dev_owner=config.dev_owner)
    if caller is None:
        return problem(401, "Send an ops-scoped API key as 'Authorization: Bearer <key>'.",
                       code="missing_api_key" if not header else "invalid_api_key",
                       headers={"WWW-Authenticate": _CHALLENGE})
    row = db.session.get(ApiKey, caller.key_id)  # one primary-key read (owner_for may have used its cache)
    if row is None or row.scope != "ops":
        return problem(403, "This key may not read operations data; create one with "
                            "`flask --app wsgi keys create --owner NAME --scope ops`.", code="ops_scope_required")
    return None


@blp.route("/details")
class Details(MethodView):
    @blp.response(200, OpsDetailsSchema, headers=headers("Cache-Control", required=("Cache-Control",)), example={
        "status": "ok", "generated_at": "2026-11-27T12:19:28.209986+00:00",
        "checks": {"database": {"ok": True, "latency_ms": 0.4}, "broker": {"ok": True, "latency_ms": 0.2}},
        "workers": {"alive": 1, "heartbeat_timeout_s": 30.0, "processes": []},
        "queue": {"depth": 0, "running": 1, "oldest_queued_age_s": None},
        "jobs_by_status": {"queued": 0, "running": 1, "succeeded": 12},
        "finished_window_s": 3600, "window": {}, "window_s": 300, "points": [],
        "slow_queries": {"threshold_s": 1.0, "running": []},
    })
    @blp.doc(operationId="getOpsDetails", security=[{"bearerAuth": []}])
    @documents_errors(blp, 401, 403, 503, always=ANY_ROUTE_ERRORS)
    def get(self):
        """Readiness, workers, backlog, poll quality, recoveries and slow queries (ops keys only)

        The data of the /ops page; docs/operations.md describes every field. Never cached.
        """
        refused = _require_ops_key()
        if refused is not None:
            return refused
        extensions = current_app.extensions
        config = extensions["config"]
        ready, checks = health_checks.run_checks()
        window = extensions["ops_window"]
        window.ensure_sampling()
        state = extensions["ops_state"].get(config.heartbeat_timeout_s, config.slow_query_s)
        report = window.report()
        now = utcnow()
        return {
            "status": "ok" if ready else "unavailable",
            "generated_at": now,
            "checks": checks,
            "workers": {
                "alive": len(state.workers),
                "heartbeat_timeout_s": config.heartbeat_timeout_s,
                "processes": [
                    {"id": w.id, "hostname": w.hostname, "pid": w.pid, "started_at": w.started_at.isoformat(),
                     "beat_at": w.beat_at.isoformat(), "beat_age_s": round((now - w.beat_at).total_seconds(), 2),
                     "running_jobs": w.running_jobs}
                    for w in state.workers
                ],
            },
            "queue": {
                "depth": state.waiting["queued"],
                "running": state.waiting["running"],
                "oldest_queued_age_s": state.oldest_queued_age_s,
            },
            "jobs_by_status": {**state.waiting, **state.finished_recently},
            "finished_window_s": RECENT_S,
            "window": report["window"],
            "window_s": int(window.span_s),
            "points": report["points"],
            "slow_queries": {"threshold_s": config.slow_query_s, "running": state.slow_statements_running},
        }, 200, {"Cache-Control": "no-store"}
