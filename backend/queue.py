"""The broker, the actors declared on it, and the one way the service enqueues a job.

The actors here are glue: they receive a job id, push a Flask app context (via middleware) and hand
over to ``runner``. They know nothing of HTTP; the job service knows nothing of Dramatiq.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from flask import Flask

from .extensions import db
from .outage import SkipAfterFailure
from .vitals import WorkerVitals

log = logging.getLogger(__name__)

QUEUE_NAME = "jobs"
RUN_JOB = "run_job"
GIVE_UP_ON_JOB = "give_up_on_job"
# Agents declare their own limit; this bounds a message that carries none.
DEFAULT_TIME_LIMIT_MS = 5 * 60 * 1000


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


class JobQueue:
    """Sends job messages. Sending never raises: a job left unsent stays queued for the sweep."""

    # After a failed send, send nothing for this long; the sweep resends every unsent job.
    BROKER_DOWN_BACKOFF_S = 2.0

    def __init__(self, broker: dramatiq.Broker, run_job: dramatiq.Actor, vitals) -> None:
        self.broker = broker
        self.run_job = run_job
        self.vitals = vitals
        self._broker_down = SkipAfterFailure(self.BROKER_DOWN_BACKOFF_S)

    def enqueue(self, job_id: str, *, delay_ms: int = 0, time_limit_s: float | None = None) -> bool:
        if self._broker_down.skipping():
            return False
        options: dict[str, Any] = {}
        if time_limit_s is not None:
            options["time_limit"] = int(time_limit_s * 1000)
        try:
            self.run_job.send_with_options(args=(job_id,), delay=delay_ms or None, **options)
        except Exception:  # the broker is down; the row is durable and the sweep resends it
            self._broker_down.failed()
            log.warning("could not enqueue job %s; it stays queued until the broker is back", job_id)
            return False
        return True


def build_queue(app: Flask, config) -> JobQueue:
    """Build the broker for ``config`` (Redis, or the in-memory embedded one) and declare actors."""
    from . import runner  # imported here: the runner needs the service, which needs this module

    if config.redis_url:
        from dramatiq.brokers.redis import RedisBroker

        # Bounded connects: a down Redis must fail a send or a health check fast, not hang it.
        broker: dramatiq.Broker = RedisBroker(url=config.redis_url, socket_connect_timeout=2)
    else:
        # The embedded worker is in-process: failures are recorded on the job, not re-raised at join.
        broker = StubBroker(fail_fast_default=False)
    broker.add_middleware(AppContextMiddleware(app))
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
            # runner could not record anything (the database was unreachable).
            "max_retries": config.broker_max_retries,
            "min_backoff": 1_000,
            "max_backoff": 30_000,
            "time_limit": DEFAULT_TIME_LIMIT_MS,
            "on_retry_exhausted": GIVE_UP_ON_JOB,
        },
    )
    dramatiq.Actor(
        runner.give_up_on_job,
        broker=broker,
        actor_name=GIVE_UP_ON_JOB,
        queue_name=QUEUE_NAME,
        priority=0,
        options={"max_retries": config.broker_max_retries, "time_limit": 60_000},
    )
    return JobQueue(broker, run_job, vitals)
