"""Wake-ups for long polls: "job X changed", published after every committed change.

A waiting request holds no database connection, only a ``threading.Event``. In production the
signal crosses processes over Redis pub/sub (workers publish, every web process listens on one
connection); embedded, it stays in the process. A waiter subscribes *before* it reads the job, and
the subscription is confirmed by Redis before ``listen`` lets it read, so a change that commits
after the read always wakes it. A lost signal (Redis away) costs latency, never correctness: a
waiter re-reads the job when its wait ends.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from .outage import SkipAfterFailure

log = logging.getLogger(__name__)

CHANNEL = "ai-jobs:job-changed"
# "API key K was revoked": every web process drops K from its key cache (backend/key_cache.py).
KEYS_CHANNEL = "ai-jobs:key-revoked"


class Waiters:
    """Local registry of events keyed by job id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_job: dict[str, set[threading.Event]] = defaultdict(set)

    @contextmanager
    def listen(self, job_ids: Iterable[str]) -> Iterator[threading.Event]:
        """An event set when one of ``job_ids`` changes."""
        event = threading.Event()
        ids = list(job_ids)
        with self._lock:
            for job_id in ids:
                self._by_job[job_id].add(event)
        try:
            yield event
        finally:
            with self._lock:
                for job_id in ids:
                    waiting = self._by_job.get(job_id)
                    if waiting is not None:
                        waiting.discard(event)
                        if not waiting:
                            del self._by_job[job_id]

    def wake(self, job_id: str) -> None:
        with self._lock:
            events = list(self._by_job.get(job_id, ()))
        for event in events:
            event.set()

    def wake_all(self) -> None:
        """Wake every waiter: they re-read, so a change missed while the signal was down is seen."""
        with self._lock:
            events = {event for waiting in self._by_job.values() for event in waiting}
        for event in events:
            event.set()

    def waiting(self, job_id: str | None = None) -> int:
        """How many waits are parked (on ``job_id``, or on any job)."""
        with self._lock:
            if job_id is not None:
                return len(self._by_job.get(job_id, ()))
            return len({event for waiting in self._by_job.values() for event in waiting})


class InProcessNotifier:
    """The embedded mode's notifier: publisher and waiters share one process."""

    def __init__(self) -> None:
        self.waiters = Waiters()
        # Called with a revoked key's id (None: every key may have been revoked).
        self.key_revoked_handlers: list[Callable[[str | None], None]] = []

    def publish_key_revoked(self, key_id: str) -> None:
        for handler in self.key_revoked_handlers:
            handler(key_id)

    def hears_key_revocations(self) -> bool:
        return True

    def publish(self, job_id: str) -> None:
        self.waiters.wake(job_id)

    def listen(self, job_ids: Iterable[str]):
        return self.waiters.listen(job_ids)

    def close(self) -> None:
        """Nothing to stop: no listener thread."""


class RedisNotifier:
    """Publishes on a Redis channel; one daemon thread per process relays messages to local waiters.

    The listener pings its connection every ``health_check_interval_s`` and treats a connection
    that answers nothing for two intervals as dead (a half-open TCP connection raises no error; it
    just goes silent). It then reconnects with exponential backoff and full jitter, and after every
    reconnect wakes all local waiters, since a change may have been published while it was away.
    """

    # Every write of a job publishes: a worker must not stall on a connect timeout at each
    # progress write while Redis is away, so after a failure publishing pauses this long.
    REDIS_DOWN_BACKOFF_S = 2.0
    RECONNECT_MIN_S = 0.1
    RECONNECT_MAX_S = 5.0

    def __init__(
        self, redis_url: str, *, health_check_interval_s: float = 5.0, subscribe_timeout_s: float = 2.0
    ) -> None:
        import redis

        self._redis_url = redis_url
        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        self.health_check_interval_s = health_check_interval_s
        # How long a long poll waits for the listener's subscription; without one it answers at once.
        self.subscribe_timeout_s = subscribe_timeout_s
        self.waiters = Waiters()
        self._subscribed = threading.Event()
        self._listener: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = threading.Event()
        self._redis_down = SkipAfterFailure(self.REDIS_DOWN_BACKOFF_S, component="notifier")
        # Confirmed subscriptions of this process's listener: more than one means it reconnected.
        self.subscriptions = 0
        # Called with a revoked key's id (None: every key may have been revoked).
        self.key_revoked_handlers: list[Callable[[str | None], None]] = []
        # Called with every change signal's payload (the job id, then its head; see snapshots.py).
        self.job_changed_handlers: list[Callable[[str], None]] = []

    def epoch(self) -> int | None:
        """Which subscription this process's listener is on, while it is subscribed (else None):
        what it learned from signals holds only as long as this stays the same."""
        self._ensure_listening()
        return self.subscriptions if self._subscribed.is_set() else None

    def publish_key_revoked(self, key_id: str) -> None:
        """Tell every process; not skipped after a failure: a revocation is rare and must try."""
        try:
            self._redis.publish(KEYS_CHANNEL, key_id)
        except Exception:  # every listener is disconnected too: each drops its whole cache on return
            log.warning("could not publish the revocation of key %s", key_id)

    def hears_key_revocations(self) -> bool:
        """True while this process's listener is subscribed, so a revocation would reach it."""
        self._ensure_listening()
        return self._subscribed.is_set()

    def publish(self, job_id: str) -> None:
        if self._redis_down.skipping():
            return
        try:
            self._redis.publish(CHANNEL, job_id)
        except Exception:  # Redis down: waiters time out and re-read; nothing is lost
            self._redis_down.failed()
            log.warning("could not publish a change of job %s; long polls will time out instead", job_id,
                        extra={"job_id": job_id})

    @contextmanager
    def listen(self, job_ids: Iterable[str]) -> Iterator[threading.Event]:
        """Park on ``job_ids``; on entry the subscription is confirmed, so read the jobs after it."""
        self._ensure_listening()
        subscribed = self._subscribed.wait(self.subscribe_timeout_s)
        with self.waiters.listen(job_ids) as event:
            if not subscribed:
                # No wake-up can be promised (Redis away, or not yet reachable): rather than a wait
                # that might sleep through a change, answer now; the client polls again.
                log.warning("job change listener is not subscribed; answering this long poll at once")
                event.set()
            yield event

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    def close(self) -> None:
        """Stop the listener within a second (an app torn down: each one listening would otherwise
        keep parsing every change signal for the rest of the process)."""
        self._closed.set()
        self._subscribed.clear()  # nothing it heard is to be trusted from now on

    def _ensure_listening(self) -> None:
        # Started lazily: worker processes only publish, and gunicorn forks after import.
        if self._closed.is_set() or (self._listener is not None and self._listener.is_alive()):
            return
        with self._start_lock:
            if self._listener is None or not self._listener.is_alive():
                self._listener = threading.Thread(target=self._listen, name="job-change-listener", daemon=True)
                self._listener.start()

    def _listen(self) -> None:
        failures = 0
        while not self._closed.is_set():
            try:
                self._relay_until_the_connection_fails()
            except Exception as exc:
                was_subscribed = self._subscribed.is_set()
                self._subscribed.clear()
                failures = 0 if was_subscribed else failures + 1
                ceiling_s = min(self.RECONNECT_MAX_S, self.RECONNECT_MIN_S * 2**failures)
                delay_s = random.uniform(self.RECONNECT_MIN_S, ceiling_s)
                log.warning("job change listener lost Redis (%s); reconnecting in %.1f s", type(exc).__name__, delay_s)
                time.sleep(delay_s)
        self._subscribed.clear()

    def _relay_until_the_connection_fails(self) -> None:
        import redis

        interval_s = self.health_check_interval_s
        client = redis.Redis.from_url(self._redis_url, socket_connect_timeout=2, socket_timeout=interval_s)
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(CHANNEL, KEYS_CHANNEL)
            last_heard = last_ping = time.monotonic()
            while not self._closed.is_set():
                message = pubsub.get_message(timeout=min(1.0, interval_s))
                now = time.monotonic()
                if message is not None:
                    last_heard = now
                    self._handle(message)
                if now - last_heard > 2 * interval_s:
                    raise ConnectionError(f"no answer from Redis for {now - last_heard:.1f} s")
                if now - last_ping >= interval_s:
                    pubsub.ping()
                    last_ping = now
        finally:
            pubsub.close()
            client.close()

    def _handle(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "message":
            data = message.get("data")
            if isinstance(data, bytes):
                if message.get("channel") == KEYS_CHANNEL.encode():
                    self._key_revoked(data.decode())
                else:
                    payload = data.decode()
                    for handler in self.job_changed_handlers:  # first: a woken poll reads what they keep
                        handler(payload)
                    self.waiters.wake(payload.partition("\t")[0])
        elif kind == "subscribe":
            if message.get("channel") != KEYS_CHANNEL.encode():
                return  # the first of the connection's two confirmations: wait for both
            if self.subscriptions:
                # Changes published while the listener was away reached nobody: let every parked
                # wait re-read now rather than at the end of its wait, and forget every cached key.
                self.waiters.wake_all()
                self._key_revoked(None)
            self.subscriptions += 1
            self._subscribed.set()

    def _key_revoked(self, key_id: str | None) -> None:
        for handler in self.key_revoked_handlers:
            handler(key_id)


def build_notifier(config):
    return RedisNotifier(config.redis_url) if config.redis_url else InProcessNotifier()
