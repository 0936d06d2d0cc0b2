"""API keys: random, stored only as a SHA-256 of the secret, owned, expirable, revocable."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from .extensions import db
from .models import ApiKey, utcnow

KEY_PREFIX = "jobs"
# 32 random bytes: a hash without a salt or a slow KDF is enough for secrets this long.
SECRET_BYTES = 32
MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class KeyOwner:
    """Who presented a valid key: the key's id (what rate budgets are counted under) and its owner."""

    key_id: str
    owner: str
    # What the key may do (see SCOPES); the development key is a job key.
    scope: str = "jobs"


# The development key of `make run` has no database row; it is counted under this id of its own.
DEV_KEY_ID = "dev"


@dataclass(frozen=True)
class IssuedKey:
    id: str
    owner: str
    key: str  # shown once, never stored
    expires_at: datetime | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# "jobs": the job API. "ops": the operations endpoints (/health/details, the ops page) only.
SCOPES = ("jobs", "ops")


def create_key(owner: str, *, expires_in: timedelta | None = None, scope: str = "jobs") -> IssuedKey:
    key_id = secrets.token_hex(8)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    secret = secrets.token_urlsafe(SECRET_BYTES)
    now = utcnow()
    expires_at = now + expires_in if expires_in else None
    db.session.add(
        ApiKey(id=key_id, owner=owner, secret_hash=_hash(secret), created_at=now, expires_at=expires_at,
               scope=scope)
    )
    db.session.commit()
    return IssuedKey(id=key_id, owner=owner, key=f"{KEY_PREFIX}_{key_id}_{secret}", expires_at=expires_at)


def list_keys(owner: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at)
    if owner is not None:
        query = query.where(ApiKey.owner == owner)
    return list(db.session.scalars(query))


def revoke_key(key_id: str) -> bool:
    key = db.session.get(ApiKey, key_id)
    if key is None:
        return False
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db.session.commit()
    # Every process drops it from its key cache now (again, if it was revoked before: harmless).
    current_app.extensions["key_cache"].forget(key_id)
    current_app.extensions["job_service"].notifier.publish_key_revoked(key_id)
    return True


def known_owner(cache, presented: str, *, dev_key: str | None = None, dev_owner: str = "dev") -> KeyOwner | None:
    """The owner of the embedded dev key or of a key in this process's key cache; None when only the
    database can tell (unknown to the cache, or not a key at all). No I/O."""
    if len(presented) > MAX_KEY_LENGTH:
        return None
    if dev_key is not None and hmac.compare_digest(presented.encode(), dev_key.encode()):
        return KeyOwner(key_id=DEV_KEY_ID, owner=dev_owner)
    return cache.get(cache.digest(presented))


def owner_for(presented: str, *, dev_key: str | None = None, dev_owner: str = "dev") -> KeyOwner | None:
    """The key id and owner of a valid, unexpired, unrevoked key, or None. Secrets compare in
    constant time. A key accepted a moment ago comes from this process's key cache, which every
    revocation clears at once (backend/key_cache.py)."""
    cache = current_app.extensions["key_cache"]
    known = known_owner(cache, presented, dev_key=dev_key, dev_owner=dev_owner)
    if known is not None:
        return known
    if len(presented) > MAX_KEY_LENGTH:
        return None
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not key_id or not secret:
        return None
    digest = cache.digest(presented)
    generation = cache.generation
    row = db.session.get(ApiKey, key_id)
    if row is None:
        # Hash anyway so an unknown id costs the same time as a wrong secret.
        hmac.compare_digest(_hash(secret), "0" * 64)
        return None
    if not hmac.compare_digest(_hash(secret), row.secret_hash):
        return None
    now = utcnow()
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    caller = KeyOwner(key_id=row.id, owner=row.owner, scope=row.scope)
    cache.put(digest, caller, key_expires_at=row.expires_at, generation=generation)
    return caller
