"""Idempotent submits: per owner, one request_id names one request body and the job it created."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from sqlalchemy import select

from ..extensions import db
from ..models import Job
from .errors import RequestIdConflict


def request_hash(agent: str, job_input: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical body (agent + input after defaults), so key order does not matter."""
    body = json.dumps({"agent": agent, "input": job_input}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def job_for_request_id(owner: str, request_id: str) -> Job | None:
    return db.session.scalars(select(Job).where(Job.owner == owner, Job.request_id == request_id)).one_or_none()


def replay(existing: Job, body_hash: str) -> Job:
    """The first job for a repeated request; a different body under the same request_id is a conflict."""
    if existing.request_hash != body_hash:
        raise RequestIdConflict(
            f"request_id {existing.request_id!r} was already used for job {existing.id} with a "
            "different body; use a new request_id for a different request.",
            job_id=existing.id,
        )
    return existing
