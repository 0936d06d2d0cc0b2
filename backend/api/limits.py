"""Rate budgets per API key, per client address for failed authentication, with the IETF
RateLimit / RateLimit-Policy headers and a 429 problem+json past a budget.

Budgets are fixed windows counted under the *authenticated key id* (never the raw header, so
``bearer KEY`` and ``Bearer  KEY`` share one bucket), per endpoint and method:

- ``poll``: status polls answered in full (200) and batch polls;
- ``poll304``: status polls answered 304 Not Modified; cheap, so a larger budget of their own;
- ``submit``: job submissions; ``default``: every other job API call;
- ``auth``: 401 answers, per client address. Past it, the address gets 429 *before* any key
  lookup, so a flood of random tokens costs no database work.

One Redis round trip per request (a Lua script increments every counter of the budget and returns
the counts and the time left), shared by all web processes. Embedded, or for a few seconds after
Redis failed, the counters live in this process's memory.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import redis
from flask import Flask, current_app, g, request
from limits import RateLimitItem, parse_many
from werkzeug.exceptions import TooManyRequests

from ..outage import SkipAfterFailure

POLL_ENDPOINTS = {"jobs.JobStatusView", "jobs.JobStatuses"}
CONDITIONAL_POLL_ENDPOINT = "jobs.JobStatusView"
KEY_PREFIX = "ai-jobs:rl"


@dataclass(frozen=True)
class Budget:
    """A named budget: one or more limits such as ``600/minute``."""

    name: str
    items: tuple[RateLimitItem, ...]

    @classmethod
    def parse(cls, name: str, notation: str) -> Budget:
        return cls(name, tuple(parse_many(notation)))


@dataclass(frozen=True)
class Spend:
    """What one request cost a budget: allowed or not, what is left and when the window ends."""

    budget: Budget
    item: RateLimitItem  # the tightest of the budget's limits for this request
    remaining: int
    reset_s: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        name = self.budget.name
        headers = {
            "RateLimit-Policy": f'"{name}";q={self.item.amount};w={self.item.get_expiry()}',
            "RateLimit": f'"{name}";r={self.remaining};t={self.reset_s}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.reset_s))
        return headers


class RateLimitExceeded(TooManyRequests):
    """A request past its budget: 429 problem+json with Retry-After and the RateLimit headers."""

    def __init__(self, detail: str, headers: dict[str, str], *, code: str = "rate_limited") -> None:
        super().__init__(description=detail)
        self.data = {"code": code}
        self._headers = headers

    def get_headers(self, environ=None, scope=None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), *self._headers.items()]


def rate_limited_detail(error: RateLimitExceeded) -> str:
    return error.description


def budget_exceeded(spend: Spend, who: str) -> RateLimitExceeded:
    limit = spend.item
    return RateLimitExceeded(
        f"Too many requests for {who}: the {spend.budget.name!r} budget is {limit.amount} per "
        f"{limit.get_expiry()} s. Retry after {max(1, spend.reset_s)} s.",
        spend.headers(),
    )


# INCR every counter of a budget; a new counter (or one left without a TTL) gets its window.
_SPEND_SCRIPT = """
local answer = {}
for i, key in ipairs(KEYS) do
  local used = redis.call('INCR', key)
  local ttl = redis.call('TTL', key)
  if ttl < 0 then
    ttl = tonumber(ARGV[i])
    redis.call('EXPIRE', key, ttl)
  end
  answer[#answer + 1] = used
  answer[#answer + 1] = ttl
end
return answer
"""


class Counters:
    """Fixed-window counters: in Redis when configured (one round trip per spend), else in memory."""

    # After a failure, count in memory this long instead of paying a timeout per request.
    REDIS_DOWN_BACKOFF_S = 2.0
    # Memory counters are swept when there are this many, so random keys cannot grow them forever.
    SWEEP_AT = 4096

    def __init__(self, redis_url: str | None) -> None:
        self._script = None
        if redis_url:
            client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
            self._script = client.register_script(_SPEND_SCRIPT)
        self._redis_down = SkipAfterFailure(self.REDIS_DOWN_BACKOFF_S)
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[float, int]] = {}  # key -> (window end in monotonic s, count)

    def spend(self, budget: Budget, subject: str) -> Spend:
        keys = [f"{KEY_PREFIX}:{budget.name}:{subject}:{item.amount}/{item.get_expiry()}" for item in budget.items]
        windows_s = [item.get_expiry() for item in budget.items]
        counts = self._incr_redis(keys, windows_s) if self._script is not None else None
        if counts is None:
            counts = self._incr_memory(keys, windows_s)
        spends = [
            Spend(
                budget=budget,
                item=item,
                remaining=max(0, item.amount - used),
                reset_s=max(0, min(ttl_s, item.get_expiry())),
                allowed=used <= item.amount,
            )
            for item, (used, ttl_s) in zip(budget.items, counts)
        ]
        refused = [s for s in spends if not s.allowed]
        if refused:
            return max(refused, key=lambda s: s.reset_s)
        return min(spends, key=lambda s: s.remaining)

    def _incr_redis(self, keys: list[str], windows_s: list[int]) -> list[tuple[int, int]] | None:
        if self._redis_down.skipping():
            return None
        try:
            flat = self._script(keys=keys, args=windows_s)
        except redis.RedisError:  # Redis away: count in memory rather than refuse or stall the API
            self._redis_down.failed()
            return None
        return [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    def _incr_memory(self, keys: list[str], windows_s: list[int]) -> list[tuple[int, int]]:
        now = time.monotonic()
        counts = []
        with self._lock:
            if len(self._memory) >= self.SWEEP_AT:
                self._memory = {k: v for k, v in self._memory.items() if v[0] > now}
            for key, window_s in zip(keys, windows_s):
                ends_at, used = self._memory.get(key, (0.0, 0))
                if ends_at <= now:
                    ends_at, used = now + window_s, 0
                used += 1
                self._memory[key] = (ends_at, used)
                counts.append((used, math.ceil(ends_at - now)))
        return counts


class AddressBlocks:
    """Addresses that spent their 401 budget, remembered in this process until the window ends, so
    their next requests are refused without a Redis round trip or a key lookup."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, tuple[float, Spend]] = {}

    def block(self, address: str, spend: Spend) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._until) >= Counters.SWEEP_AT:
                self._until = {a: v for a, v in self._until.items() if v[0] > now}
            self._until[address] = (now + spend.reset_s, spend)

    def blocked(self, address: str) -> Spend | None:
        entry = self._until.get(address)
        if entry is None:
            return None
        until, spend = entry
        left_s = until - time.monotonic()
        if left_s <= 0:
            return None
        return Spend(spend.budget, spend.item, 0, math.ceil(left_s), allowed=False)


class RateLimits:
    """The service's budgets, bound to one app."""

    def __init__(self, config) -> None:
        self.counters = Counters(config.redis_url)
        self.budgets = {
            "poll": Budget.parse("poll", config.rate_limit_poll),
            "poll304": Budget.parse("poll304", config.rate_limit_poll_304),
            "submit": Budget.parse("submit", config.rate_limit_submit),
            "default": Budget.parse("default", config.rate_limit_default),
            "auth": Budget.parse("auth", config.rate_limit_auth_failures),
        }
        self.blocked_addresses = AddressBlocks()

    def spend_for_key(self, budget_name: str, key_id: str) -> Spend:
        subject = f"key:{key_id}:{request.endpoint}:{request.method}"
        return self.counters.spend(self.budgets[budget_name], subject)

    def refuse_blocked_address(self, address: str) -> None:
        """Raise 429 if ``address`` is known to have spent its 401 budget; no I/O."""
        spend = self.blocked_addresses.blocked(address)
        if spend is not None:
            raise _auth_exceeded(spend)

    def count_auth_failure(self, address: str) -> Spend:
        """Count a 401 against ``address``; raise 429 past the budget; block at its last unit."""
        spend = self.counters.spend(self.budgets["auth"], f"addr:{address}")
        if spend.remaining == 0:
            self.blocked_addresses.block(address, spend)
        if not spend.allowed:
            raise _auth_exceeded(spend)
        g.rate_spend = spend
        return spend


def _auth_exceeded(spend: Spend) -> RateLimitExceeded:
    return budget_exceeded(spend, "this client address: too many requests without a valid API key")


def _budget_name() -> str:
    if request.endpoint in POLL_ENDPOINTS:
        if request.endpoint == CONDITIONAL_POLL_ENDPOINT and "If-None-Match" in request.headers:
            # Charged up front to the 304 budget; if the answer turns out to be a full 200, the
            # view charges the poll budget too (charge_full_answer), so bogus tags buy nothing.
            return "poll304"
        return "poll"
    if request.endpoint == "jobs.Jobs" and request.method == "POST":
        return "submit"
    return "default"


def _limits() -> RateLimits:
    return current_app.extensions["rate_limits"]


def _spend_budget() -> None:
    """A ``before_request`` hook, registered after authentication: charge the caller's key."""
    caller = g.get("caller")
    if caller is None:
        return  # not an API call that needs a key (auth ran first and set the caller otherwise)
    spend = _limits().spend_for_key(_budget_name(), caller.key_id)
    g.rate_spend = spend
    if not spend.allowed:
        raise budget_exceeded(spend, "this API key")


def charge_full_answer() -> None:
    """A conditional status poll is about to answer 200: charge the ``poll`` budget as well."""
    spend = g.get("rate_spend")
    if spend is None or spend.budget.name != "poll304":
        return
    full = _limits().spend_for_key("poll", g.caller.key_id)
    g.rate_spend = full
    if not full.allowed:
        raise budget_exceeded(full, "this API key")


def _ratelimit_headers(response):
    spend = g.get("rate_spend")
    if spend is not None:
        for name, value in spend.headers().items():
            # A 429 from another limit (the long-poll cap) keeps its own headers.
            response.headers.setdefault(name, value)
    return response


def init_limits(app: Flask) -> RateLimits:
    """Register the budgets; call after ``init_auth`` so that hooks run in that order."""
    limits = RateLimits(app.extensions["config"])
    app.extensions["rate_limits"] = limits
    app.before_request(_spend_budget)
    app.after_request(_ratelimit_headers)
    return limits
