"""Bearer authentication for every /api/ai endpoint.

It runs as an *app-level* ``before_request`` hook registered before the rate limits' hook, so
budgets are counted under the authenticated key id. Failed attempts are counted per client address
(see limits.py): an address past its 401 budget is refused before its key is even looked up.
"""
from __future__ import annotations

from flask import Flask, current_app, g, request
from flask_smorest import Blueprint

from .. import keys
from .problems import problem

_CHALLENGE = 'Bearer realm="ai-jobs"'
# Blueprints whose every view needs a key (see ``protect``).
_PROTECTED: set[str] = set()


def protect(blp: Blueprint) -> Blueprint:
    """Require an API key on every view of ``blp``."""
    _PROTECTED.add(blp.name)
    return blp


def needs_api_key() -> bool:
    # CORS preflights carry no credentials; unmatched paths fall through to 404/405.
    return request.method != "OPTIONS" and request.blueprint in _PROTECTED and request.endpoint is not None


def authenticate():
    """Set ``g.caller`` (key id and owner) or answer 401 problem+json (429 past the 401 budget)."""
    if not needs_api_key():
        return None
    limits = current_app.extensions["rate_limits"]
    address = request.remote_addr or "unknown"
    limits.refuse_blocked_address(address)
    header = request.headers.get("Authorization", "")
    if not header:
        limits.count_auth_failure(address)
        return problem(
            401,
            "Send an API key as 'Authorization: Bearer <key>'.",
            code="missing_api_key",
            headers={"WWW-Authenticate": _CHALLENGE},
        )
    config = current_app.extensions["config"]
    scheme, _, token = header.strip().partition(" ")
    caller = None
    if scheme.lower() == "bearer" and token.strip():
        caller = keys.owner_for(
            token.strip(),
            dev_key=config.dev_api_key if config.embedded else None,
            dev_owner=config.dev_owner,
        )
    if caller is None:
        limits.count_auth_failure(address)
        return problem(
            401,
            "The API key is invalid, expired or revoked.",
            code="invalid_api_key",
            headers={"WWW-Authenticate": _CHALLENGE + ', error="invalid_token"'},
        )
    if caller.scope != "jobs":
        # Ops keys read operations data only: a leaked ops key must not submit or read jobs.
        return problem(
            403,
            f"This is an {caller.scope}-scoped key; the job API needs a jobs key "
            "(`flask --app wsgi keys create --owner NAME`).",
            code="jobs_scope_required",
        )
    g.caller = caller
    return None


def current_owner() -> str:
    return g.caller.owner


def current_key_id() -> str:
    return g.caller.key_id


def init_auth(app: Flask) -> None:
    """Register authentication; call before ``init_limits`` so that it runs first."""
    app.before_request(authenticate)
