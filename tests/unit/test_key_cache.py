"""The per-process key cache: what it keeps, for how long, and what makes it forget."""
from __future__ import annotations

from datetime import timedelta

from backend.key_cache import KeyCache
from backend.keys import KeyOwner
from backend.models import utcnow

ALICE = KeyOwner(key_id="k1", owner="alice")


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def _cache(ttl_s: float = 5.0, trusted: bool = True) -> tuple[KeyCache, Clock]:
    clock = Clock()
    return KeyCache(ttl_s, trusted=lambda: trusted, clock=clock), clock


def test_an_accepted_key_is_served_from_the_cache_until_its_ttl_runs_out():
    cache, clock = _cache(ttl_s=5.0)
    cache.put("d1", ALICE, key_expires_at=None, generation=cache.generation)
    assert cache.get("d1") == ALICE
    clock.now_s += 4.9
    assert cache.get("d1") == ALICE
    clock.now_s += 0.2
    assert cache.get("d1") is None


def test_a_key_is_never_served_past_its_own_expiry():
    cache, clock = _cache(ttl_s=60.0)
    cache.put("d1", ALICE, key_expires_at=utcnow() + timedelta(seconds=2), generation=cache.generation)
    clock.now_s += 3
    assert cache.get("d1") is None


def test_forgetting_a_revoked_key_drops_only_that_key():
    cache, _ = _cache()
    bob = KeyOwner(key_id="k2", owner="bob")
    cache.put("d1", ALICE, key_expires_at=None, generation=cache.generation)
    cache.put("d2", bob, key_expires_at=None, generation=cache.generation)
    cache.forget("k1")
    assert cache.get("d1") is None
    assert cache.get("d2") == bob


def test_forgetting_every_key_empties_the_cache():
    cache, _ = _cache()
    cache.put("d1", ALICE, key_expires_at=None, generation=cache.generation)
    cache.forget(None)
    assert cache.get("d1") is None


def test_a_read_that_began_before_a_revocation_is_not_cached():
    cache, _ = _cache()
    generation = cache.generation  # the database read starts here
    cache.forget("k1")  # the revocation lands while the row is being read
    cache.put("d1", ALICE, key_expires_at=None, generation=generation)
    assert cache.get("d1") is None


def test_nothing_is_served_or_kept_while_revocations_cannot_be_heard():
    cache, _ = _cache(trusted=False)
    cache.put("d1", ALICE, key_expires_at=None, generation=cache.generation)
    assert cache.get("d1") is None


def test_a_ttl_of_zero_turns_the_cache_off():
    cache, _ = _cache(ttl_s=0)
    cache.put("d1", ALICE, key_expires_at=None, generation=cache.generation)
    assert cache.get("d1") is None


def test_the_cache_holds_digests_never_the_presented_key():
    assert KeyCache.digest("jobs_k1_secret") != "jobs_k1_secret"
    assert len(KeyCache.digest("jobs_k1_secret")) == 64
