"""Wake-ups for long polls: "job X changed", published after every committed change.

A waiting request holds no database connection, only a ``threading.Event``. In production the
signal crosses processes over Redis pub/sub (workers publish, every web process listens on one
connection); embedded, it stays in the process. A lost signal costs latency, never correctness:
a waiter re-reads the job when it wakes or times out.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterable, Iterator

from .outage import SkipAfterFailure

log = logging.getLogger(__name__)

CHANNEL = "ai-jobs:job-changed"


class Waiters:
    """Local registry of events keyed by job id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_job: dict[str, set[threading.Event]] = defaultdict(set)

    @contextmanager
    def listen(self, job_ids: Iterable[str]) -> Iterator[threading.Event]:
        """An event set when one of ``job_ids`` changes. Listen *before* reading the jobs, so a
        change that lands between the read and the wait is not missed."""
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


class InProcessNotifier:
    """The embedded mode's notifier: publisher and waiters share one process."""

    def __init__(self) -> None:
        self.waiters = Waiters()

    def publish(self, job_id: str) -> None:
        self.waiters.wake(job_id)

    def listen(self, job_ids: Iterable[str]):
        return self.waiters.listen(job_ids)


class RedisNotifier:
    """Publishes on a Redis channel; one daemon thread per process relays messages to local waiters."""

    def __init__(self, redis_url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        self._listen_redis = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
        self.waiters = Waiters()
        self._listener: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._redis_down = SkipAfterFailure(self.REDIS_DOWN_BACKOFF_S)

    # Every write of a job publishes: a worker must not stall on a connect timeout at each
    # progress write while Redis is away, so after a failure publishing pauses this long.
    REDIS_DOWN_BACKOFF_S = 2.0

    def publish(self, job_id: str) -> None:
        if self._redis_down.skipping():
            return
        try:
            self._redis.publish(CHANNEL, job_id)
        except Exception:  # Redis down: waiters time out and re-read; nothing is lost
            self._redis_down.failed()
            log.warning("could not publish a change of job %s; long polls will time out instead", job_id)

    def listen(self, job_ids: Iterable[str]):
        self._ensure_listening()
        return self.waiters.listen(job_ids)

    def _ensure_listening(self) -> None:
        # Started lazily: worker processes only publish, and gunicorn forks after import.
        if self._listener is not None and self._listener.is_alive():
            return
        with self._start_lock:
            if self._listener is None or not self._listener.is_alive():
                self._listener = threading.Thread(target=self._listen, name="job-change-listener", daemon=True)
                self._listener.start()

    def _listen(self) -> None:
        while True:
            try:
                pubsub = self._listen_redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        self.waiters.wake(data.decode())
            except Exception:
                log.warning("job change listener lost Redis; reconnecting in 1 s")
                time.sleep(1)


def build_notifier(config):
    return RedisNotifier(config.redis_url) if config.redis_url else InProcessNotifier()
