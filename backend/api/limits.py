"""Rate budgets per API key, per client address for failed authentication, with the IETF
RateLimit / RateLimit-Policy headers and a 429 problem+json past a budget.

Budgets are fixed windows counted under the *authenticated key id* (never the raw header, so
``bearer KEY`` and ``Bearer  KEY`` share one bucket), per endpoint and method:

- ``poll``: status polls answered in full (200) and batch polls;
- ``poll304``: status polls answered 304 Not Modified; cheap, so a larger budget of their own;
- ``submit``: job submissions; ``default``: every other job API call;
- ``auth``: 401 answers, per client address. Past it, the address gets 429 *before* any key
  lookup, so a flood of random tokens costs no database work.

flask-limiter declares the budgets, counts every hit and raises on a breach, except for polls, the
hot path: those are hit with the strategy and storage flask-limiter built, from our own hook
(``RateLimits.spend_poll_budget``), since its middleware costs a poll about 0.15 ms of CPU. What it
cannot say itself is the glue below: the key function (the key id that authentication found), which
budget a request spends, the in-process block of an address past its 401 budget, and the IETF
header format.

Submits, other calls and 401s cost one Redis round trip per request (per limit of their budget;
the defaults have one), shared by all web processes: flask-limiter's fixed window makes one
``incr`` per limit, and :class:`OneTripRedisStorage` answers it with a Lua script that also returns
the window's TTL, so the count and reset the headers need come from that same answer.
Polls are counted write-behind (:class:`WriteBehindCounts`): a poll of a window this process already
knows costs no round trip; its count reaches Redis within ``FLUSH_INTERVAL_S``, with every other
key's, in one pipelined round trip (docs/adr/0003, amendment of 2026-11-30).
Embedded, or for a few seconds after Redis failed, the counters live in this process's memory.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from dataclasses import dataclass

import flask_limiter
from flask import Flask, current_app, g, has_request_context, request
from flask_limiter import Limit, Limiter, RequestLimit
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import NoScriptError
from werkzeug.exceptions import TooManyRequests

from ..outage import SkipAfterFailure

POLL_ENDPOINTS = {"jobs.JobStatusView", "jobs.JobStatuses"}
CONDITIONAL_POLL_ENDPOINT = "jobs.JobStatusView"
KEY_PREFIX = "ai-jobs:rl"
# storage_uri = SCHEME_PREFIX + REDIS_URL selects OneTripRedisStorage (limits' storage registry).
SCHEME_PREFIX = "ai-jobs+"
# Address blocks and known windows are swept when there are this many, so random addresses or keys
# cannot grow them forever.
SWEEP_AT = 4096
# A poll counted write-behind reaches Redis at most this long after the first hit not yet sent (plus
# the flush's round trip). It is also how stale one process's view of the others' polls can be, so
# across processes a budget can be overrun by about this long's worth of polls per process. 10 ms:
# a flush (one pipelined round trip for every key) costs the flusher about what one synchronous hit
# cost a poll, so at 100 flushes a second it is paid back by the first 100 polls a second of a busy
# process, while an overrun of 10 ms of polls is a fraction of a poll for a client within its
# budget (1,200 a minute is one poll per 50 ms). Shorter buys little accuracy for more wake-ups;
# much longer lets a burst through several processes overrun by more.
FLUSH_INTERVAL_S = 0.010
# The flusher's own Redis connection, so that `CLIENT LIST` (and the round-trip tests) tell its
# pipelined flushes from the requests' hits.
FLUSHER_CLIENT_NAME = "ai-jobs-rate-flush"
# WSGI environ key: {budget: Spend} already charged with poll_spend before Flask saw the request.
PRECHARGED_SPENDS_ENVIRON_KEY = "ai_jobs.precharged_spends"

log = logging.getLogger(__name__)


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


# INCRBY a fixed-window counter and return it with its TTL in ms; a new counter (or one left without
# a TTL) gets its window. The TTL is what makes a second round trip for the headers unnecessary; in
# ms because a process that counts write-behind decides from it when a window has ended, and whole
# seconds (rounded) would put that up to half a second off.
_INCR_TTL_SCRIPT = """
local used = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl_ms = redis.call('PTTL', KEYS[1])
if ttl_ms < 0 then
  ttl_ms = tonumber(ARGV[1]) * 1000
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {used, ttl_ms}
"""


def _seen_this_request() -> dict[str, tuple[int, float]]:
    """Counters incremented during this request: key -> (count, window end in epoch s)."""
    if not has_request_context():
        return {}
    return g.setdefault("_rate_counters", {})


class OneTripRedisStorage(RedisStorage):
    """limits' Redis storage whose ``incr`` is one round trip that also learns the window's end.

    flask-limiter asks for ``get`` and ``get_expiry`` after a hit (``RequestLimit.remaining``,
    ``reset_at``); within the request they are answered from what ``incr`` returned, which is the
    count right after this request's own hit. While Redis fails, counting goes on in memory for
    ``REDIS_DOWN_BACKOFF_S`` rather than refusing every request or paying a timeout for each.
    """

    STORAGE_SCHEME = [f"{SCHEME_PREFIX}redis", f"{SCHEME_PREFIX}rediss"]
    REDIS_DOWN_BACKOFF_S = 2.0

    def __init__(self, uri: str, **options) -> None:
        super().__init__(uri.removeprefix(SCHEME_PREFIX), **options)
        self._uri = uri.removeprefix(SCHEME_PREFIX)
        self._client_options = {k: v for k, v in options.items() if k != "key_prefix"}
        self.incr_ttl = self.get_connection().register_script(_INCR_TTL_SCRIPT)
        self._redis_down = SkipAfterFailure(self.REDIS_DOWN_BACKOFF_S)
        self._memory = MemoryStorage()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        used, window_end_s = self.incr_for_window(key, expiry, amount)
        _seen_this_request()[key] = (used, window_end_s)
        return used

    def incr_for_window(self, key: str, expiry: int, amount: int = 1) -> tuple[int, float]:
        """``incr`` answering the count *and* the window's end (epoch s), with no request needed."""
        if not self._redis_down.skipping():
            try:
                used, ttl_ms = self.incr_ttl(keys=[self.prefixed_key(key)], args=[expiry, amount])
            except self.base_exceptions:  # Redis away: count in memory rather than refuse or stall
                self._redis_down.failed()
            else:
                return int(used), time.time() + int(ttl_ms) / 1000
        used = self._memory.incr(key, expiry, amount)
        return used, self._memory.get_expiry(key)

    def failed_elsewhere(self) -> None:
        """Redis failed a caller sharing these counters: count in memory for a while here too."""
        self._redis_down.failed()

    def separate_client(self, client_name: str):
        """A Redis client on a connection of its own, named in ``CLIENT LIST``."""
        return self.dependency.from_url(self._uri, client_name=client_name, **self._client_options)

    def get(self, key: str) -> int:
        seen = _seen_this_request().get(key)
        if seen is not None:
            return seen[0]
        return self._read(key, super().get, self._memory.get)

    def get_expiry(self, key: str) -> float:
        seen = _seen_this_request().get(key)
        if seen is not None:
            return seen[1]
        return self._read(key, super().get_expiry, self._memory.get_expiry)

    def _read(self, key, from_redis, from_memory):
        if self._redis_down.skipping():
            return from_memory(key)
        try:
            return from_redis(key)
        except self.base_exceptions:
            self._redis_down.failed()
            return from_memory(key)


class _Window:
    """What this process knows of one counter: Redis's last answer and its own hits not yet in it."""

    __slots__ = ("end_s", "expiry_s", "pending", "seen", "sending")

    def __init__(self, expiry_s: int, end_s: float, seen: int) -> None:
        self.expiry_s = expiry_s
        self.end_s = end_s  # epoch s, from the script's TTL
        self.seen = seen  # the count Redis last answered (every process's hits)
        self.sending = 0  # this process's hits in a flush not answered yet
        self.pending = 0  # this process's hits since the last flush was taken

    def count(self) -> int:
        return self.seen + self.sending + self.pending

    def learn(self, used: int, end_s: float) -> None:
        """Take an answer from Redis, which may arrive after a newer one for the same key."""
        if end_s > self.end_s + self.expiry_s / 2:
            # A later window (ends are an expiry apart): the hits pending belonged to the one that
            # ended, and sending them would spend the new window's budget.
            self.seen, self.end_s, self.pending = used, end_s, 0
        elif end_s > self.end_s - self.expiry_s / 2:  # the same window: the larger count is the later
            self.seen = max(self.seen, used)
        # else: an answer about a window already over


# Every WriteBehindCounts of this process, so a forked child can start each afresh.
_EVERY_WRITE_BEHIND: weakref.WeakSet[WriteBehindCounts] = weakref.WeakSet()


class WriteBehindCounts(Storage):
    """Fixed-window counters counted in this process and sent to Redis behind the requests.

    In front of :class:`OneTripRedisStorage`, for flask-limiter's fixed-window strategy (``incr``,
    then ``get`` and ``get_expiry``), and used for the poll budgets only. A hit on a window this
    process knows (from an earlier answer) and that has not ended is answered with Redis's last
    count plus this process's hits since, with no I/O. A key not known, or whose window ended, is
    hit synchronously through the wrapped storage (its one round trip), which teaches the window.
    A daemon thread sends the hits not yet sent ``FLUSH_INTERVAL_S`` after the first of them, every
    key in one pipelined round trip of the same script, and takes each answer as the new count.

    Within one process counting is exact. Across processes a process refuses on the others' hits
    it last heard of, so a budget can be overrun by about one flush interval's worth of polls per
    process. While Redis fails the hits stay counted here (on top of the last count heard) and are
    sent once it answers, if their window has not ended; keys not known meanwhile are counted in
    the wrapped storage's memory, as for every other budget.
    """

    STORAGE_SCHEME = None  # built by RateLimits around the limiter's storage, never from a URI

    def __init__(self, storage: OneTripRedisStorage) -> None:
        super().__init__()
        self._storage = storage
        self._redis_errors = storage.base_exceptions
        self._start_in_this_process()
        _EVERY_WRITE_BEHIND.add(self)

    def _start_in_this_process(self) -> None:
        """Fresh state: at start, and in a forked child (gunicorn forks after the app is built),
        where the parent's flusher thread did not come along, its lock may have been held at the
        fork, and the hits it had not sent are the parent's to send."""
        if getattr(self, "_wake_at_collection", None) is not None:
            # The parent's Condition may have been locked at the fork: never wait on it here.
            self._wake_at_collection.detach()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._windows: dict[str, _Window] = {}
        self._unsent: dict[str, _Window] = {}  # windows with pending hits
        self._flush_at = 0.0  # monotonic s
        self._retry_at = 0.0  # monotonic s: no flush before, after a failed one
        self._flusher: threading.Thread | None = None
        self._client = None  # the flusher's, made by the flusher
        self._outage_logged = False
        # A collected instance wakes its flusher, which then ends: no thread outlives its app.
        self._wake_at_collection = weakref.finalize(self, _wake_up, self._wake)
        self._wake_at_collection.atexit = False

    @property
    def base_exceptions(self):
        return self._redis_errors

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now_s = time.time()
        with self._lock:
            window = self._windows.get(key)
            if window is not None and now_s < window.end_s:
                if not window.pending:
                    self._unsent_from_now(key, window)
                window.pending += amount
                return window.seen + window.sending + window.pending
        used, end_s = self._storage.incr_for_window(key, expiry, amount)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                if len(self._windows) >= SWEEP_AT:
                    self._sweep(now_s)
                window = self._windows[key] = _Window(expiry, end_s, used)
            else:
                window.learn(used, end_s)
            return window.count()

    def get(self, key: str) -> int:
        """The count as this process knows it: right after this thread's ``incr`` of the key, that
        count and the hits other threads made since."""
        with self._lock:
            window = self._windows.get(key)
            if window is not None:
                return window.count()
        return self._storage.get(key)

    def get_expiry(self, key: str) -> float:
        with self._lock:
            window = self._windows.get(key)
            if window is not None:
                return window.end_s
        return self._storage.get_expiry(key)

    def check(self) -> bool:
        return self._storage.check()

    def reset(self) -> int | None:
        with self._lock:
            self._windows.clear()
            self._unsent.clear()
        return self._storage.reset()

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)
            self._unsent.pop(key, None)
        self._storage.clear(key)

    def _unsent_from_now(self, key: str, window: _Window) -> None:
        """Called with the lock held for a window's first pending hit since its last flush."""
        self._unsent[key] = window
        if len(self._unsent) == 1:
            self._flush_at = max(time.monotonic() + FLUSH_INTERVAL_S, self._retry_at)
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=_flush_while_alive, args=(weakref.ref(self), self._wake),
                    name="rate-limit-flusher", daemon=True,
                )
                self._flusher.start()
            self._wake.notify()

    def _sweep(self, now_s: float) -> None:
        self._windows = {
            key: window for key, window in self._windows.items()
            if window.end_s > now_s or window.sending or window.pending
        }

    def _flush(self) -> None:
        """Send every pending hit in one pipelined round trip; on failure keep them for later."""
        with self._lock:
            now_s = time.time()
            batch = []
            for key, window in self._unsent.items():
                # A window that ended no longer limits anyone; its hits would spend the next one's.
                if window.pending and now_s < window.end_s:
                    batch.append((key, window, window.pending))
                    window.sending += window.pending
                window.pending = 0
            self._unsent = {}
        if not batch:
            return
        try:
            answers = self._send(batch)
        except Exception as error:  # whatever it was, the hits must not be lost
            outage = isinstance(error, self._redis_errors)
            if outage:
                self._storage.failed_elsewhere()  # requests skip Redis for a while too: no timeouts
            if not self._outage_logged:  # one warning per outage, not one per flush
                self._outage_logged = True
                log.warning("could not send rate-limit counts to Redis (%s); counting in this process "
                            "until it answers", error, exc_info=not outage)
            with self._lock:
                self._retry_at = time.monotonic() + self._storage.REDIS_DOWN_BACKOFF_S
                for key, window, hits in batch:
                    window.sending -= hits
                    if not window.pending and key not in self._unsent:
                        self._unsent[key] = window
                    window.pending += hits
                self._flush_at = self._retry_at
            return
        if self._outage_logged:
            self._outage_logged = False
            log.info("rate-limit counts reach Redis again")
        answered_s = time.time()
        with self._lock:
            for (_key, window, hits), (used, ttl_ms) in zip(batch, answers):
                window.sending -= hits
                window.learn(int(used), answered_s + int(ttl_ms) / 1000)

    def _send(self, batch: list[tuple[str, _Window, int]]) -> list:
        if self._client is None:
            self._client = self._storage.separate_client(FLUSHER_CLIENT_NAME)
        script = self._storage.incr_ttl
        for _attempt in range(2):
            # EVALSHA by hand: a pipeline given the Script object asks SCRIPT EXISTS first, a
            # second round trip per flush.
            pipe = self._client.pipeline(transaction=False)
            for key, window, hits in batch:
                pipe.evalsha(script.sha, 1, self._storage.prefixed_key(key), window.expiry_s, hits)
            try:
                return pipe.execute()
            except NoScriptError:  # Redis restarted or its scripts were flushed: none ran
                script.sha = self._client.script_load(script.script)
        raise NoScriptError("the rate-limit script could not be loaded")


def _wake_up(wake: threading.Condition) -> None:
    with wake:
        wake.notify()


def _flush_while_alive(counts_ref: weakref.ref, wake: threading.Condition) -> None:
    """The flusher: asleep while nothing is pending (no periodic wake-ups), ends with its counters.
    Holds them only weakly while it waits, so that an app dropped (in tests) is collected."""
    while True:
        with wake:
            while True:
                counts = counts_ref()
                if counts is None:
                    return
                if counts._unsent:
                    due_in_s = counts._flush_at - time.monotonic()
                    break
                del counts
                wake.wait()
        if due_in_s > 0:
            time.sleep(due_in_s)  # hits of the next few ms ride along in the same round trip
        try:
            counts._flush()
        except Exception:  # a bug here must not stop counting for good: say so and go on
            log.exception("rate-limit flush failed")
        del counts


def _after_fork_in_child() -> None:
    for counts in list(_EVERY_WRITE_BEHIND):
        counts._start_in_this_process()


# At the fork itself rather than a pid check on the request path: the child's state is reset
# before any of its threads exists, so two first requests cannot both reset it, and a poll pays
# no getpid().
os.register_at_fork(after_in_child=_after_fork_in_child)


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
            # Polls only: the hot path, where the round trip was a fifth of the CPU and a budget
            # overrun by a few ms of polls per process harms nobody. Submits, other calls and 401s
            # stay exact across processes, one round trip each.
            self.poll_counts: WriteBehindCounts | None = WriteBehindCounts(storage)
            self._poll_strategy = FixedWindowRateLimiter(self.poll_counts)
        else:
            # Embedded (memory://): the counters are in this process already, so writing them
            # behind would add a thread and save nothing.
            self.poll_counts = None
            self._poll_strategy = self.limiter.limiter
        self._pass_polls_by_the_middleware(app)
        # flask-limiter's "rate limit a block" form: hit when a view reaches it, not per request.
        # override_defaults=False keeps the default limit on the endpoints it is used from.
        self._auth_failure = self.limiter.shared_limit(
            self.notations["auth"], scope="auth", key_func=_failed_address, override_defaults=False,
        )
        self.blocked_addresses = AddressBlocks()

    def _pass_polls_by_the_middleware(self, app: Flask) -> None:
        """Authenticated polls are counted by ``spend_poll_budget`` (see there), so flask-limiter's
        ``before_request`` hook does not run for them at all: a request filter would skip them too,
        but only after the hook resolved the view, 4 % of a poll's CPU under gunicorn. A 401 on a
        poll endpoint still goes through the auth block."""
        hooks = app.before_request_funcs.setdefault(None, [])
        check = self.limiter._check_request_limit

        def check_unless_poll():
            if request.endpoint in POLL_ENDPOINTS and g.get("caller") is not None:
                return None
            return check()

        hooks[hooks.index(check)] = check_unless_poll

    def request_spend(self) -> Spend | None:
        """What this request has spent so far: the refused limit, else the one with least left."""
        spent = g.get("rate_spend")
        if spent is not None:  # a poll, counted by spend_poll_budget
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

    def spend_poll_budget(self) -> None:
        """A ``before_request`` hook: charge a poll (``poll`` or ``poll304``) to the caller's key.

        Polls are the hot path, so they are hit with flask-limiter's fixed-window strategy (the
        same keys and windows as its middleware would use) but without the middleware, whose limit
        resolution for every request cost a poll about 0.15 ms of CPU, and over write-behind
        counters (docs/adr/0003). Every other request goes through the middleware.
        """
        caller = g.get("caller")
        if caller is None or request.endpoint not in POLL_ENDPOINTS:
            return
        self._charge_poll(_budget_name(), caller.key_id)

    def poll_spend(self, budget: str, key_id: str, endpoint: str, method: str) -> Spend:
        """Charge one poll to ``budget`` (``poll`` or ``poll304``) of ``key_id`` for ``endpoint``
        and ``method`` (flask-limiter's names: ``jobs.JobStatusView``, ``GET``), and say what it
        cost. Needs no Flask request. Raises neither past the budget (``allowed`` is false; the
        caller refuses) nor while Redis is away (counted in memory)."""
        strategy = self._poll_strategy
        scope = f"{endpoint}:{budget}:{method}"  # flask-limiter's per-method scope
        now = time.time()
        spends = []
        for item in self._items[budget]:
            allowed = strategy.hit(item, key_id, scope)
            reset_at, remaining = strategy.get_window_stats(item, key_id, scope)
            spends.append(Spend(budget, item, remaining, max(0, min(math.ceil(reset_at - now), item.get_expiry())),
                                allowed=allowed))
        return self._tightest(budget, spends)

    def _charge_poll(self, budget: str, key_id: str) -> None:
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
        self._charge_poll("poll", g.caller.key_id)


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
    app.before_request(limits.spend_poll_budget)
    app.after_request(_headers)
    return limits
