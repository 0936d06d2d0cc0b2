"""What a worker does with one job message: claim, run the agent, record the outcome."""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from dramatiq.middleware.time_limit import TimeLimitExceeded
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from .agents.base import AgentError, TransientAgentError
from .extensions import db
from .jobs.errors import JobCancelled
from .jobs.service import JobService
from .jobs.transitions import AttemptSuperseded, Claim, Transitions

log = logging.getLogger(__name__)

MAX_RESULT_BYTES = 1024 * 1024


class HandedBack(Exception):
    """This worker is shutting down and hands the attempt back to the queue unfinished."""


class JobReporter:
    """The reporter an agent gets: throttled progress writes and cheap cancellation checkpoints.

    Each write is a short transaction of its own. Writes closer together than ``min_interval_s``
    within one stage are held back (the latest is kept and flushed at the next allowed moment), so a
    chatty agent costs the database a few writes per second at most.
    """

    def __init__(
        self,
        service: Transitions,
        claim: Claim,
        *,
        min_interval_s: float = 0.25,
        clock=time.monotonic,
        hand_back_requested=lambda: False,
    ):
        self._service = service
        # Asked at every checkpoint, without a database round trip: a shutting-down worker's signal.
        self._hand_back_requested = hand_back_requested
        self._claim = claim
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._last_write_s = float("-inf")
        self._last_stage: str | None = None
        self._pending: tuple[float, str, str] | None = None
        self._cancel_requested = False

    def progress(self, percent: float, stage: str, message: str = "") -> None:
        self._pending = (percent, stage, message)
        if stage != self._last_stage or percent >= 100 or self._due():
            self._flush()
        self.checkpoint()

    def checkpoint(self) -> None:
        if self._hand_back_requested():
            raise HandedBack()
        if not self._cancel_requested and self._due():
            if self._pending is not None:
                self._flush()
            else:
                self._cancel_requested = self._service.cancel_requested(self._claim)
                self._last_write_s = self._clock()
        if self._cancel_requested:
            raise JobCancelled()

    def _due(self) -> bool:
        return self._clock() - self._last_write_s >= self._min_interval_s

    def _flush(self) -> None:
        percent, stage, message = self._pending
        self._pending = None
        self._cancel_requested = self._service.record_progress(self._claim, percent, stage, message)
        self._last_write_s = self._clock()
        self._last_stage = stage


def run_job(job_id: str) -> None:
    """Dramatiq actor body. Running it twice for one job is harmless: only one claim succeeds."""
    service: JobService = current_app.extensions["job_service"]
    attempts = service.attempts
    claim = attempts.claim(job_id)
    if claim is None:
        log.info("job %s is not queued (already claimed, finished or cancelled); skipping", job_id)
        return
    agent = service.agents.get(claim.agent)
    if agent is None:
        attempts.fail(claim, "agent_unavailable", f"The agent {claim.agent!r} is not enabled on this worker.")
        return
    vitals = current_app.extensions["job_queue"].vitals
    vitals.track(claim)
    try:
        if vitals.hand_back_requested():
            # Claimed while this worker was already handing its jobs back: give it straight back.
            attempts.hand_back(claim)
            return
        _run_claimed(attempts, agent, claim, hand_back_requested=vitals.hand_back_requested)
    except AttemptSuperseded:
        # The job moved on (finished, cancelled, or handed to a newer attempt after a stall) while
        # this attempt ran: drop its outcome silently, the newer state stands.
        log.info("job %s attempt %s was superseded; dropping its outcome", job_id, claim.attempt)
    finally:
        vitals.untrack(claim)


def _run_claimed(attempts: Transitions, agent, claim: Claim, *, hand_back_requested=lambda: False) -> None:
    """Run the agent and record its outcome; every write is fenced on ``claim`` still owning the job."""
    job_id = claim.job_id
    reporter = JobReporter(attempts, claim, hand_back_requested=hand_back_requested)
    try:
        result = agent.run(dict(claim.input), reporter)
        _check_result(result)
    except AttemptSuperseded:
        # Raised by a progress write or checkpoint: not the agent's failure, and not ours to record.
        raise
    except JobCancelled:
        attempts.mark_cancelled(claim)
    except HandedBack:
        # Not a failure: the job goes back to the queue for another worker, this attempt uncounted.
        db.session.rollback()
        attempts.hand_back(claim)
    except TimeLimitExceeded:
        # The limit can strike mid-transaction (inside a progress write): start clean.
        db.session.rollback()
        attempts.fail(
            claim,
            "timeout",
            f"The {claim.agent} agent did not finish within its time limit of {agent.time_limit_s:g} s.",
        )
    except TransientAgentError as exc:
        attempts.retry_or_fail(claim, exc.code, exc.message)
    except (TimeoutError, ConnectionError) as exc:
        # An agent's own network call timed out or dropped: worth another attempt.
        attempts.retry_or_fail(claim, "transient_error", f"The {claim.agent} agent hit a {type(exc).__name__}.")
    except AgentError as exc:
        attempts.fail(claim, exc.code, exc.message, retryable=exc.retryable)
    except SQLAlchemyError:
        # The database went away mid-job: nothing can be recorded now, so let Dramatiq retry the
        # message; the sweep requeues the job once its heartbeat goes stale.
        raise
    except Exception as exc:
        log.exception("job %s: the %s agent raised unexpectedly", job_id, claim.agent)
        db.session.rollback()
        attempts.fail(
            claim, "agent_crashed", f"The {claim.agent} agent stopped with an unexpected {type(exc).__name__}."
        )
    else:
        if not attempts.succeed(claim, result):
            log.info("job %s finished after it was superseded; result dropped", job_id)


def _check_result(result: Any) -> None:
    if not isinstance(result, dict):
        raise AgentError("The agent returned something other than a JSON object.", code="invalid_result")
    try:
        size_bytes = len(json.dumps(result))
    except (TypeError, ValueError):
        raise AgentError("The agent returned a result that is not JSON.", code="invalid_result") from None
    if size_bytes > MAX_RESULT_BYTES:
        raise AgentError(
            f"The agent returned {size_bytes} bytes; results are limited to {MAX_RESULT_BYTES}.",
            code="invalid_result",
        )
