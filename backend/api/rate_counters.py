"""Where the rate budgets are counted: limits storages that flask-limiter's strategies use.

- :class:`OneTripRedisStorage` (``ai-jobs+redis://``): every hit is one Lua round trip that also
  returns the window's end, so the RateLimit headers need no second one; it counts in memory for a
  while after Redis fails.
- :class:`WriteBehindCounts`, in front of it, for the poll budgets only: a hit on a window this
  process knows costs no I/O, and a thread sends the hits to Redis behind the requests
  (docs/adr/0003, amendment of 2026-11-30).
"""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref

from flask import g, has_request_context
from limits.storage import MemoryStorage, RedisStorage, Storage
from redis.exceptions import NoScriptError

from ..outage import SkipAfterFailure

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

log = logging.getLogger(__name__)


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
