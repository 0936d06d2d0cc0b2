"""The broker, the actor declared on it, and the one way the service sends a job's message.

The actor here is glue: it receives a job id, pushes a Flask app context (via middleware) and hands
over to ``runner``. It knows nothing of HTTP; the job service knows nothing of Dramatiq.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
from dramatiq.brokers.stub import StubBroker
from flask import Flask

from .extensions import db
from .outage import SkipAfterFailure
from .vitals import WorkerVitals

log = logging.getLogger(__name__)

QUEUE_NAME = "jobs"
DELAY_QUEUE_NAME = "jobs.DQ"
RUN_JOB = "run_job"
# Agents declare their own limit; this bounds a message that carries none.
DEFAULT_TIME_LIMIT_MS = 5 * 60 * 1000
# Dramatiq keeps a dead-lettered message this long; a tracked count never needs to outlive it.
TRACKING_TTL_MS = 7 * 24 * 3600 * 1000


class AppContextMiddleware(dramatiq.Middleware):
    """Give every message its own Flask app context, popped (and its DB session removed) after."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._local = threading.local()

    def before_process_message(self, broker, message) -> None:
        context = self.app.app_context()
        context.push()
        self._local.context = context

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        context = getattr(self._local, "context", None)
        if context is None:
            return
        self._local.context = None
        db.session.remove()
        context.pop()

    after_skip_message = after_process_message


class _MemoryCounts:
    """Outstanding deliveries per message id, for the in-process (embedded) broker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, message_id: str) -> None:
        with self._lock:
            self._counts[message_id] += 1

    def remove(self, message_id: str) -> None:
        with self._lock:
            if self._counts[message_id] <= 1:
                self._counts.pop(message_id, None)
            else:
                self._counts[message_id] -= 1

    def outstanding(self, message_ids: Iterable[str]) -> set[str]:
        with self._lock:
            return {message_id for message_id in message_ids if self._counts.get(message_id, 0) > 0}


class _RedisCounts:
    """Outstanding deliveries per message id in Redis, shared by every process of the cluster."""

    _ADD = "local n = redis.call('incr', KEYS[1]); redis.call('pexpire', KEYS[1], ARGV[1]); return n"
    # A count that vanished (Redis restarted) stays gone: never below zero.
    _REMOVE = (
        "if redis.call('exists', KEYS[1]) == 0 then return 0 end "
        "local n = redis.call('decr', KEYS[1]) "
        "if n <= 0 then redis.call('del', KEYS[1]) end return n"
    )

    def __init__(self, redis_url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        self._add = self._redis.register_script(self._ADD)
        self._remove = self._redis.register_script(self._REMOVE)

    @staticmethod
    def _key(message_id: str) -> str:
        return f"ai-jobs:deliveries:{message_id}"

    def add(self, message_id: str) -> None:
        self._add(keys=[self._key(message_id)], args=[TRACKING_TTL_MS])

    def remove(self, message_id: str) -> None:
        self._remove(keys=[self._key(message_id)])

    def outstanding(self, message_ids: Iterable[str]) -> set[str]:
        ids = list(message_ids)
        if not ids:
            return set()
        counts = self._redis.mget([self._key(message_id) for message_id in ids])
        return {message_id for message_id, count in zip(ids, counts) if count is not None and int(count) > 0}


class MessageTracker(dramatiq.Middleware):
    """Counts the deliveries of each job message that the broker still holds.

    Every enqueue of a job message (the first send, a Dramatiq retry, a delayed message moving to
    its queue) adds one; every ack or nack (done, skipped, or dead-lettered) takes one away. A
    message held by a crashed worker keeps its count until Dramatiq hands it back. So a count of
    zero means no delivery is left anywhere in the broker: the sweep sends such a job again, and
    leaves every other job alone however long it waits. The hooks run in whichever process
    enqueues or acks, so the counts live in Redis in production and in memory when embedded.
    A tracking failure costs at most one duplicate message, which the claim makes harmless.
    """

    def __init__(self, counts) -> None:
        self.counts = counts

    def outstanding(self, message_ids: Iterable[str]) -> set[str]:
        try:
            return self.counts.outstanding(message_ids)
        except Exception:
            # Redis down: assume every message is still there; a lost one waits for Redis to return.
            log.warning("could not read message deliveries; assuming every message is still there")
            return set(message_ids)

    def _change(self, message, change) -> None:
        if message.actor_name != RUN_JOB:
            return
        try:
            change(message.message_id)
        except Exception:
            log.warning("could not track a delivery of message %s", message.message_id)

    def after_enqueue(self, broker, message, delay) -> None:
        self._change(message, self.counts.add)

    def after_ack(self, broker, message) -> None:
        self._change(message, self.counts.remove)

    after_nack = after_ack


class JobQueue:
    """Builds and sends job messages. Sending never raises: a job left unsent stays queued for the
    sweep."""

    # After a failed send, send nothing for this long; the sweep resends every unsent job.
    BROKER_DOWN_BACKOFF_S = 2.0

    def __init__(self, broker: dramatiq.Broker, run_job: dramatiq.Actor, vitals, tracker: MessageTracker) -> None:
        self.broker = broker
        self.run_job = run_job
        self.vitals = vitals
        self.tracker = tracker
        self._broker_down = SkipAfterFailure(self.BROKER_DOWN_BACKOFF_S, component="broker")

    def message(self, job_id: str, *, time_limit_s: float | None = None) -> dramatiq.Message:
        options: dict[str, Any] = {}
        if time_limit_s is not None:
            options["time_limit"] = int(time_limit_s * 1000)
        return self.run_job.message_with_options(args=(job_id,), **options)

    def send(self, message: dramatiq.Message, *, delay_ms: int = 0) -> bool:
        if self._broker_down.skipping():
            return False
        try:
            self.broker.enqueue(message, delay=delay_ms or None)
        except Exception:  # the broker is down; the row is durable and the sweep resends it
            self._broker_down.failed()
            log.warning("could not enqueue job %s; it stays queued until the broker is back", message.args[0],
                        extra={"job_id": message.args[0]})
            return False
        return True

    def requeue_from_dead_workers(self) -> None:
        """Ask the broker to hand back the messages that dead workers had fetched (Redis only)."""
        requeue = getattr(self.broker, "requeue_from_dead_workers", None)
        if requeue is not None:
            requeue()


def _redis_broker(config) -> dramatiq.Broker:
    from dramatiq.brokers.redis import RedisBroker

    class JobsRedisBroker(RedisBroker):
        """Dramatiq's Redis broker, with its maintenance pass on request.

        A dead worker's fetched messages go back to their queue only in a maintenance pass, which
        Dramatiq runs by chance (0.1 % of commands; 136 s measured on a small cluster). The sweep
        asks for one every round instead, so they return one heartbeat timeout after the death.
        """

        def _should_do_maintenance(self, command: str) -> int:
            return 1 if command == "maintenance" else super()._should_do_maintenance(command)

        def requeue_from_dead_workers(self) -> None:
            for queue_name in (QUEUE_NAME, DELAY_QUEUE_NAME):
                self.do_maintenance(queue_name)

    return JobsRedisBroker(
        url=config.broker_url or config.redis_url,
        # Bounded connects: a down Redis must fail a send or a health check fast, not hang it.
        socket_connect_timeout=2,
        # A live worker touches its broker heartbeat about every second (its delay-queue consumer
        # polls), so our own heartbeat timeout is a safe bound for Dramatiq's too.
        heartbeat_timeout=int(config.heartbeat_timeout_s * 1000),
    )


# pika's defaults wait long for a broker that is down; a send or a health check must fail fast.
_AMQP_DEFAULTS = {"connection_attempts": "1", "socket_timeout": "2", "blocked_connection_timeout": "5"}


def _amqp_url(url: str) -> str:
    """``url`` with fail-fast connection options added where it sets none of its own."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in _AMQP_DEFAULTS.items():
        query.setdefault(name, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _rabbitmq_broker(config) -> dramatiq.Broker:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    # Publisher confirms: a send returns only once RabbitMQ holds the message, so a job accepted
    # with 202 has its message stored, not just written to a socket. Unacked deliveries return to
    # the queue the moment a consumer's connection closes (a SIGKILLed worker), with no timeout.
    return RabbitmqBroker(url=_amqp_url(config.broker_url), confirm_delivery=True)


def build_queue(app: Flask, config) -> JobQueue:
    """Build the broker for ``config`` (RabbitMQ, Redis, or the in-memory embedded one) and declare
    the actor."""
    from . import runner  # imported here: the runner needs the service, which needs this module

    if config.broker_kind == "rabbitmq":
        broker = _rabbitmq_broker(config)
        # Deliveries are counted in Redis whichever broker carries them.
        tracker = MessageTracker(_RedisCounts(config.redis_url))
    elif config.broker_kind == "redis":
        broker = _redis_broker(config)
        tracker = MessageTracker(_RedisCounts(config.redis_url))
    else:
        # The embedded worker is in-process: failures are recorded on the job, not re-raised at join.
        broker = StubBroker(fail_fast_default=False)
        tracker = MessageTracker(_MemoryCounts())
    broker.add_middleware(AppContextMiddleware(app))
    broker.add_middleware(tracker)
    vitals = WorkerVitals(app, config)
    broker.add_middleware(vitals)

    run_job = dramatiq.Actor(
        runner.run_job,
        broker=broker,
        actor_name=RUN_JOB,
        queue_name=QUEUE_NAME,
        priority=0,
        options={
            # Agent failures are recorded by the runner itself; a message is retried only when the
            # runner could not record anything (the database was unreachable). When the retries
            # run out the message is dead-lettered, its tracked count drops to zero, and the sweep
            # sends the still-queued job again once the database is back: an outage fails no job.
            "max_retries": config.broker_max_retries,
            "min_backoff": 1_000,
            "max_backoff": 30_000,
            "time_limit": DEFAULT_TIME_LIMIT_MS,
        },
    )
    return JobQueue(broker, run_job, vitals, tracker)
