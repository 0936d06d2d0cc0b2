"""Bearer authentication for every /api/ai endpoint."""
from __future__ import annotations

from flask import current_app, g, request

from .. import keys
from .problems import problem

_CHALLENGE = 'Bearer realm="ai-jobs"'


def require_api_key():
    """A ``before_request`` hook: sets ``g.owner`` or answers 401 problem+json."""
    if request.method == "OPTIONS":
        return None  # CORS preflights carry no credentials
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        return problem(
            401,
            "Send an API key as 'Authorization: Bearer <key>'.",
            code="missing_api_key",
            headers={"WWW-Authenticate": _CHALLENGE},
        )
    config = current_app.extensions["config"]
    owner = None
    if scheme.lower() == "bearer" and token.strip():
        owner = keys.owner_for(
            token.strip(),
            dev_key=config.dev_api_key if config.embedded else None,
            dev_owner=config.dev_owner,
        )
    if owner is None:
        return problem(
            401,
            "The API key is invalid, expired or revoked.",
            code="invalid_api_key",
            headers={"WWW-Authenticate": _CHALLENGE + ', error="invalid_token"'},
        )
    g.owner = owner
    return None


def current_owner() -> str:
    return g.owner
