"""Rate budgets per API key, per client address for failed authentication, with the IETF
RateLimit / RateLimit-Policy headers and a 429 problem+json past a budget.

Budgets are fixed windows counted under the *authenticated key id* (never the raw header, so
``bearer KEY`` and ``Bearer  KEY`` share one bucket), per endpoint and method:

- ``poll``: status polls answered in full (200) and batch polls;
- ``poll304``: status polls answered 304 Not Modified; cheap, so a larger budget of their own;
- ``submit``: job submissions; ``default``: every other job API call;
- ``auth``: 401 answers, per client address. Past it, the address gets 429 *before* any key
  lookup, so a flood of random tokens costs no database work.

flask-limiter declares the budgets, counts every hit and raises on a breach, except for polls and
submits, the hot paths: those are hit with the strategy flask-limiter built, from our own hook
(``RateLimits.spend_budget_written_behind``), since its middleware costs a request about 0.15 ms
of CPU. What it
cannot say itself is the glue below: the key function (the key id that authentication found), which
budget a request spends, the in-process block of an address past its 401 budget, and the IETF
header format.

Other calls and 401s cost one Redis round trip per request (per limit of their budget; the
defaults have one), shared by all web processes: flask-limiter's fixed window makes one ``incr``
per limit, and :class:`OneTripRedisStorage` answers it with a Lua script that also returns the
window's TTL, so the count and reset the headers need come from that same answer.
Polls and submits are counted write-behind (:class:`WriteBehindCounts`): a request of a window this
process already knows costs no round trip; its count reaches Redis within ``FLUSH_INTERVAL_S``,
with every other key's, in one pipelined round trip (docs/adr/0003, amendments of 2026-11-30).
Embedded, or for a few seconds after Redis failed, the counters live in this process's memory.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import flask_limiter
from flask import Flask, current_app, g, request
from flask_limiter import Limit, Limiter, RequestLimit
from limits import RateLimitItem, parse_many
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from .rate_counters import SCHEME_PREFIX, SWEEP_AT, OneTripRedisStorage, WriteBehindCounts

POLL_ENDPOINTS = {"jobs.JobStatusView", "jobs.JobStatuses"}
# Counted write-behind, past flask-limiter's middleware: the budgets of the hot paths, where a
# budget overrun by a few ms of requests per process harms nobody (docs/adr/0003).
WRITTEN_BEHIND_BUDGETS = frozenset({"poll", "poll304", "submit"})
CONDITIONAL_POLL_ENDPOINT = "jobs.JobStatusView"
KEY_PREFIX = "ai-jobs:rl"
# WSGI environ key: {budget: Spend} already charged with poll_spend before Flask saw the request.
PRECHARGED_SPENDS_ENVIRON_KEY = "ai_jobs.precharged_spends"


@dataclass(frozen=True)
class Spend:
    """What one request cost a budget: allowed or not, what is left and when the window ends."""

    budget: str
    item: RateLimitItem  # the tightest of the budget's limits for this request
    remaining: int
    reset_s: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Policy": f'"{self.budget}";q={self.item.amount};w={self.item.get_expiry()}',
            "RateLimit": f'"{self.budget}";r={self.remaining};t={self.reset_s}',
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
        f"Too many requests for {who}: the {spend.budget!r} budget is {limit.amount} per "
        f"{limit.get_expiry()} s. Retry after {max(1, spend.reset_s)} s.",
        spend.headers(),
    )


class AddressBlocks:
    """Addresses that spent their 401 budget, remembered in this process until the window ends, so
    their next requests are refused without a Redis round trip or a key lookup."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, tuple[float, Spend]] = {}

    def block(self, address: str, spend: Spend) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._until) >= SWEEP_AT:
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


def _budget_name() -> str:
    """The budget this request spends (before any charge_full_answer), worked out once."""
    name = g.get("_rate_budget_of_request")
    if name is None:
        name = g._rate_budget_of_request = _budget_of_request()
    return name


def _budget_of_request() -> str:
    if request.endpoint in POLL_ENDPOINTS:
        if request.endpoint == CONDITIONAL_POLL_ENDPOINT and "If-None-Match" in request.headers:
            # Charged up front to the 304 budget; if the answer turns out to be a full 200, the
            # view charges the poll budget too (charge_full_answer), so bogus tags buy nothing.
            return "poll304"
        return "poll"
    if request.endpoint == "jobs.Jobs" and request.method == "POST":
        return "submit"
    return "default"


def _key_id() -> str:
    """flask-limiter's key function: the key id authentication found (never the raw header)."""
    return g.caller.key_id


def _unauthenticated() -> bool:
    return g.get("caller") is None


def _failed_address() -> str:
    return g.rate_address


class RateLimits:
    """The service's budgets on one flask-limiter ``Limiter``, bound to one app."""

    def __init__(self, app: Flask) -> None:
        config = app.extensions["config"]
        self.notations = {
            "poll": config.rate_limit_poll,
            "poll304": config.rate_limit_poll_304,
            "submit": config.rate_limit_submit,
            "default": config.rate_limit_default,
            "auth": config.rate_limit_auth_failures,
        }
        self._items = {name: parse_many(notation) for name, notation in self.notations.items()}
        if config.redis_url:
            storage_uri = SCHEME_PREFIX + config.redis_url
            storage_options = {"key_prefix": KEY_PREFIX, "socket_connect_timeout": 1, "socket_timeout": 1}
        else:
            storage_uri, storage_options = "memory://", {}
        self.limiter = Limiter(
            key_func=_key_id,
            app=app,
            # One default limit whose notation and scope are the request's budget: every call of
            # the job API with a valid key spends exactly one budget, per endpoint and method.
            default_limits=[Limit(
                lambda: self.notations[_budget_name()],
                scope=lambda _endpoint: _budget_name(),
                per_method=True,
                exempt_when=_unauthenticated,
            )],
            storage_uri=storage_uri,
            storage_options=storage_options,
            strategy="fixed-window",
            # Every limit of a budget counts each request, as a refused one spends them all too.
            fail_on_first_breach=False,
            # The IETF RateLimit fields, not flask-limiter's X-RateLimit-*: written by _headers.
            headers_enabled=False,
            # The storage falls back to memory itself, on our schedule (REDIS_DOWN_BACKOFF_S).
            in_memory_fallback_enabled=False,
            swallow_errors=False,
        )
        # A 429 is the answer and the metrics count it; a log line per refused request would let
        # one client flood the logs (flask-limiter logs each breach at INFO).
        self.limiter.logger.setLevel(logging.WARNING)
        # Health checks, docs and the demo page spend nothing and cost no flask-limiter work.
        from .auth import needs_api_key  # here: auth.py imports problems.py, which imports this module

        self.limiter.request_filter(lambda: not needs_api_key())
        storage = self.limiter.storage
        if isinstance(storage, OneTripRedisStorage):
            # Polls and submits: the hot paths, where the round trip was a fifth of a poll's CPU and
            # a budget overrun by a few ms of requests per process harms nobody. Other calls and
            # 401s stay exact across processes, one round trip each.
            self.written_behind_counts: WriteBehindCounts | None = WriteBehindCounts(storage)
            self._written_behind_strategy = FixedWindowRateLimiter(self.written_behind_counts)
        else:
            # Embedded (memory://): the counters are in this process already, so writing them
            # behind would add a thread and save nothing.
            self.written_behind_counts = None
            self._written_behind_strategy = self.limiter.limiter
        self._pass_written_behind_budgets_by_the_middleware(app)
        # flask-limiter's "rate limit a block" form: hit when a view reaches it, not per request.
        # override_defaults=False keeps the default limit on the endpoints it is used from.
        self._auth_failure = self.limiter.shared_limit(
            self.notations["auth"], scope="auth", key_func=_failed_address, override_defaults=False,
        )
        self.blocked_addresses = AddressBlocks()

    def _pass_written_behind_budgets_by_the_middleware(self, app: Flask) -> None:
        """Authenticated polls and submits are counted by ``spend_budget_written_behind`` (see
        there), so flask-limiter's ``before_request`` hook does not run for them at all: a request
        filter would skip them too, but only after the hook resolved the view and its limits, 4 %
        of a poll's CPU and 5 % of a submit's under gunicorn. A 401 still goes through the auth
        block."""
        hooks = app.before_request_funcs.setdefault(None, [])
        check = self.limiter._check_request_limit

        def check_unless_written_behind():
            if g.get("caller") is not None and _budget_name() in WRITTEN_BEHIND_BUDGETS:
                return None
            return check()

        hooks[hooks.index(check)] = check_unless_written_behind

    def request_spend(self) -> Spend | None:
        """What this request has spent so far: the refused limit, else the one with least left."""
        spent = g.get("rate_spend")
        if spent is not None:  # a poll or a submit, counted by spend_budget_written_behind
            return spent
        evaluated: list[RequestLimit] = self.limiter.current_limits
        if not evaluated:
            return None
        budget = g.get("rate_budget") or _budget_name()
        now = time.time()
        return self._tightest(budget, [
            Spend(budget, limit.limit, remaining, max(0, min(math.ceil(reset_at - now), limit.limit.get_expiry())),
                  allowed=not limit.breached)
            for limit in evaluated
            for reset_at, remaining in [limit.window]
        ])

    def _tightest(self, budget: str, spends: list[Spend]) -> Spend:
        if len(spends) > 1:  # ties go to the limit written first in the budget's notation
            order = self._items[budget]
            spends.sort(key=lambda s: order.index(s.item) if s.item in order else len(order))
        refused = [s for s in spends if not s.allowed]
        if refused:
            return max(refused, key=lambda s: s.reset_s)
        return min(spends, key=lambda s: s.remaining)

    def spend_budget_written_behind(self) -> None:
        """A ``before_request`` hook: charge a poll (``poll`` or ``poll304``) or a submit to the
        caller's key.

        Polls and submits are the hot paths, so they are hit with flask-limiter's fixed-window
        strategy (the same keys and windows as its middleware would use) but without the
        middleware, whose limit resolution for every request cost about 0.15 ms of CPU, and over
        write-behind counters (docs/adr/0003). Every other request goes through the middleware.
        """
        caller = g.get("caller")
        if caller is None:
            return
        budget = _budget_name()
        if budget in WRITTEN_BEHIND_BUDGETS:
            self._charge_written_behind(budget, caller.key_id)

    def poll_spend(self, budget: str, key_id: str, endpoint: str, method: str) -> Spend:
        """Charge one request to ``budget`` (one of ``WRITTEN_BEHIND_BUDGETS``) of ``key_id`` for
        ``endpoint`` and ``method`` (flask-limiter's names: ``jobs.JobStatusView``, ``GET``), and
        say what it cost. Needs no Flask request. Raises neither past the budget (``allowed`` is
        false; the caller refuses) nor while Redis is away (counted in memory)."""
        strategy = self._written_behind_strategy
        scope = f"{endpoint}:{budget}:{method}"  # flask-limiter's per-method scope
        now = time.time()
        spends = []
        for item in self._items[budget]:
            allowed = strategy.hit(item, key_id, scope)
            reset_at, remaining = strategy.get_window_stats(item, key_id, scope)
            spends.append(Spend(budget, item, remaining, max(0, min(math.ceil(reset_at - now), item.get_expiry())),
                                allowed=allowed))
        return self._tightest(budget, spends)

    def _charge_written_behind(self, budget: str, key_id: str) -> None:
        # A WSGI-level fast path that charged this poll and then handed it to Flask (to write the
        # 429) left its spends here: charging them again would count the poll twice.
        spend = request.environ.get(PRECHARGED_SPENDS_ENVIRON_KEY, {}).get(budget)
        if spend is None:
            spend = self.poll_spend(budget, key_id, request.endpoint, request.method)
        g.rate_spend = spend
        if not spend.allowed:
            raise budget_exceeded(spend, "this API key")

    def refuse_blocked_address(self, address: str) -> None:
        """Raise 429 if ``address`` is known to have spent its 401 budget; no I/O."""
        spend = self.blocked_addresses.blocked(address)
        if spend is not None:
            raise _auth_exceeded(spend)

    def count_auth_failure(self, address: str) -> Spend:
        """Count a 401 against ``address``; raise 429 past the budget; block at its last unit."""
        g.rate_budget, g.rate_address = "auth", address
        try:
            with self._auth_failure:
                pass
        finally:
            spend = self.request_spend()
            if spend is not None and spend.remaining == 0:
                self.blocked_addresses.block(address, spend)
        return spend

    def charge_full_answer(self) -> None:
        if g.get("caller") is None or g.get("rate_full_answer_charged") or _budget_name() != "poll304":
            return
        g.rate_full_answer_charged = True
        self._charge_written_behind("poll", g.caller.key_id)


def _auth_exceeded(spend: Spend) -> RateLimitExceeded:
    return budget_exceeded(spend, "this client address: too many requests without a valid API key")


def _limits() -> RateLimits:
    return current_app.extensions["rate_limits"]


def charge_full_answer() -> None:
    """A conditional status poll is about to answer 200: charge the ``poll`` budget as well."""
    _limits().charge_full_answer()


def _refused(error: flask_limiter.RateLimitExceeded):
    """flask-limiter's breach as this service's 429: problem+json naming the budget, with headers."""
    from .problems import http_exception_problem

    spend = _limits().request_spend()
    if spend.budget == "auth":
        return http_exception_problem(_auth_exceeded(spend))
    return http_exception_problem(budget_exceeded(spend, "this API key"))


def _headers(response):
    spend = _limits().request_spend()
    if spend is not None:
        for name, value in spend.headers().items():
            # A 429 from another limit (the long-poll cap) keeps its own headers.
            response.headers.setdefault(name, value)
    return response


def init_limits(app: Flask) -> RateLimits:
    """Register the budgets; call after ``init_auth`` so that the key id is known when they run."""
    limits = RateLimits(app)
    app.extensions["rate_limits"] = limits
    app.register_error_handler(flask_limiter.RateLimitExceeded, _refused)
    app.before_request(limits.spend_budget_written_behind)
    app.after_request(_headers)
    return limits
