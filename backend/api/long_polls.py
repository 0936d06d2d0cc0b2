"""The cap on long polls one API key may hold parked at once, across every web process.

A parked long poll holds a serving thread for up to ``wait`` seconds. Without a cap, one key could
park on every thread of every process and starve everyone else. With Redis, each parked poll is a
member of a per-key sorted set scored by the time its wait ends: a process that dies while parked
leaves entries behind, and they stop counting once their wait is over (plus a grace), so a crash
never shrinks the cap for long. Embedded, or for a few seconds after Redis failed, the count is kept
in this process.
"""
from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from ..outage import SkipAfterFailure
from .limits import RateLimitExceeded

log = logging.getLogger(__name__)

KEY_PREFIX = "ai-jobs:long-polls"
POLICY = "long-polls"
# Entries of a crashed process count this long past their wait's end, then expire.
GRACE_S = 5

# Drop ended entries, then take a slot if fewer than the cap are held. Redis's own clock, so web
# hosts with skewed clocks agree. Answers {1, held} or {0, seconds until the first slot frees}.
_ENTER_SCRIPT = """
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_s - tonumber(ARGV[4]))
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[1]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(first[2]) - now_s)}
end
redis.call('ZADD', KEYS[1], now_s + tonumber(ARGV[2]), ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) + tonumber(ARGV[4])))
return {1, tostring(held + 1)}
"""


class TooManyLongPolls(RateLimitExceeded):
    """The key already holds its cap of parked long polls."""

    def __init__(self, cap: int, retry_after_s: int) -> None:
        super().__init__(
            f"This API key already holds {cap} parked long polls, the most allowed at once. Wait for "
            "one to answer, or poll without ?wait=.",
            {
                "RateLimit-Policy": f'"{POLICY}";q={cap}',
                "RateLimit": f'"{POLICY}";r=0;t={retry_after_s}',
                "Retry-After": str(retry_after_s),
            },
            code="too_many_long_polls",
        )


class LongPollSlots:
    """At most ``cap`` parked long polls per key."""

    REDIS_DOWN_BACKOFF_S = 2.0

    def __init__(self, redis_url: str | None, cap: int, *, grace_s: float = GRACE_S) -> None:
        self.cap = cap
        self.grace_s = grace_s
        self._redis = None
        if redis_url:
            self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
            self._enter = self._redis.register_script(_ENTER_SCRIPT)
        self._redis_down = SkipAfterFailure(self.REDIS_DOWN_BACKOFF_S)
        self._lock = threading.Lock()
        self._local_ends: dict[str, list[float]] = {}

    @contextmanager
    def hold(self, key_id: str, wait_s: float) -> Iterator[None]:
        """Hold a slot while parked; raise ``TooManyLongPolls`` if the key holds them all."""
        member = self._enter_redis(key_id, wait_s)
        if member is None:
            with self._enter_local(key_id, wait_s):
                yield
            return
        try:
            yield
        finally:
            self._leave_redis(key_id, member)

    def _enter_redis(self, key_id: str, wait_s: float) -> str | None:
        if self._redis is None or self._redis_down.skipping():
            return None
        member = uuid.uuid4().hex
        try:
            taken, value = self._enter(keys=[f"{KEY_PREFIX}:{key_id}"], args=[self.cap, wait_s, member, self.grace_s])
        except redis.RedisError:  # Redis away: cap per process meanwhile rather than not at all
            self._redis_down.failed()
            log.warning("long-poll slots: Redis unreachable; capping per process for %.0f s", self.REDIS_DOWN_BACKOFF_S)
            return None
        if not int(taken):
            raise TooManyLongPolls(self.cap, max(1, math.ceil(float(value))))
        return member

    def held_locally(self, key_id: str) -> int:
        """Slots ``key_id`` holds in this process's own count (embedded, or while Redis is away)."""
        with self._lock:
            return len(self._local_ends.get(key_id, ()))

    def _leave_redis(self, key_id: str, member: str) -> None:
        try:
            self._redis.zrem(f"{KEY_PREFIX}:{key_id}", member)
        except redis.RedisError:  # the entry expires at the end of its wait anyway
            self._redis_down.failed()

    @contextmanager
    def _enter_local(self, key_id: str, wait_s: float) -> Iterator[None]:
        ends_at = time.monotonic() + wait_s
        with self._lock:
            ends = self._local_ends.setdefault(key_id, [])
            if len(ends) >= self.cap:
                raise TooManyLongPolls(self.cap, max(1, math.ceil(min(ends) - time.monotonic())))
            ends.append(ends_at)
        try:
            yield
        finally:
            with self._lock:
                ends.remove(ends_at)
                if not ends:
                    self._local_ends.pop(key_id, None)
