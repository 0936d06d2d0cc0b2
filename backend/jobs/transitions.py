"""Every change of a job's row, and the fence that keeps a superseded attempt from writing.

All writes go through ``Transitions.write``: one conditional UPDATE (compare-and-set on the status)
that bumps ``version`` and appends the matching ``job_events`` row in one transaction. A write made
on behalf of an attempt is fenced (``attempt_owns_job``): it applies only while that attempt still
owns the job, that is while the job is ``running`` that very attempt. A duplicate delivery, a worker
thawed after a stall, or a racing cancel therefore loses the race instead of moving a job backwards,
out of a terminal state, or out of the hands of the attempt that replaced it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import ClauseElement, String, bindparam, case, cast, literal, select, tuple_, update

from .. import job_metrics
from ..extensions import db
from ..models import Job, UTCDateTime, utcnow
from .progress_writes import ProgressWrites
from .snapshots import StatusSnapshot
from .statements import (
    autocommit_next_statement,
    change_then_event,
    change_with_event_postgresql,
    commit_if_open,
    execute_alone,
    in_transaction,
    on_postgresql,
    returned_with_event,
)
from .status import TERMINAL, JobStatus, sources_of

# What the claim's metrics need from before the claim: since when the job waited, and whether the
# sweep requeued it from a lost worker (then heartbeat_at is that worker's last beat).
_BEFORE_CLAIM = (Job.updated_at, Job.next_attempt_at, Job.error_code, Job.heartbeat_at)


# SQL expressions that writes use, built once: a write's statement is cached per shape (by their ids).
_NEXT_ATTEMPT = Job.attempts + 1
_ONE_MORE_HANDED_BACK = Job.handed_back + 1
_NO_CANCEL_REQUEST = Job.cancel_requested_at.is_(None)
# Writes come in a handful of shapes; past this many something builds its expressions per call.
_MAX_STATEMENT_SHAPES = 256

def _attempt_started(job) -> Any:
    """The claim's event message, in SQL: the attempt number is only known once the row changed."""
    return literal("Attempt ", String) + cast(job.attempts, String) + literal(" started", String)


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one attempt of a job; every write it makes is fenced by ``attempt``."""

    job_id: str
    agent: str
    input: dict[str, Any]
    attempt: int
    started_at: datetime
    # Earlier attempts handed back by shutting-down workers: not counted against the attempt limit.
    handed_back: int = 0

    @property
    def counted_attempts(self) -> int:
        """The attempts that count against ``JOB_MAX_ATTEMPTS``, this one included."""
        return self.attempt - self.handed_back


class AttemptSuperseded(Exception):
    """The job no longer belongs to this attempt (finished, cancelled or handed to another worker)."""


def attempt_owns_job(attempt: int) -> list[Any]:
    """The fence: the conditions under which attempt ``attempt`` may still write its job.

    ``attempts`` only grows at a claim, so "running, same attempt" is true for exactly one attempt
    at a time; once the sweep requeues the job, or another worker claims it, the old attempt's
    writes match no row.
    """
    return [Job.status == JobStatus.RUNNING.value, Job.attempts == attempt]


class Transitions:
    """The job's state machine on the database: user-driven and worker-driven moves."""

    def __init__(self, *, config, snapshots, estimator, messages) -> None:
        self.config = config
        self.snapshots = snapshots
        self.estimator = estimator
        self.messages = messages
        self._statements: dict[tuple, tuple] = {}
        # The jobs a worker runs report progress in waves (started together, they report together):
        # on PostgreSQL their writes go out grouped, one statement per wave (progress_writes.py).
        self._progress_writes = ProgressWrites(snapshots)
        # The claim's completion estimate, per agent in SQL (``CASE agent``): the claim learns which
        # agent the job is for in the very statement that starts it.
        self._agent_names = sorted(messages.agents)
        self._estimate_at_start = case(
            {name: bindparam(f"estimate_{index}", type_=UTCDateTime()) for index, name in enumerate(self._agent_names)},
            value=Job.agent, else_=None,
        ) if self._agent_names else None

    # ---- what a worker does with its attempt --------------------------------------------------

    def claim(self, job_id: str) -> Claim | None:
        """Start the next attempt of a queued job, or None if it is not ours to run.

        Delivery is at-least-once: a duplicate message finds the job already running or finished
        and is skipped here.
        """
        now = utcnow()
        row = self.write(
            job_id,
            to=JobStatus.RUNNING,
            when=[JobStatus.QUEUED],
            values={
                "attempts": _NEXT_ATTEMPT,
                "started_at": now,
                "heartbeat_at": now,
                "next_attempt_at": None,
                "progress_stage": "starting",
                "progress_message": None,
                "estimated_completion_at": self._estimate_at_start,
                # The last attempt's error stays in the history; the new attempt starts clean.
                "error_code": None,
                "error_message": None,
                "error_retryable": None,
            },
            # A queued job with a cancel request is never started; the sweep ends it cancelled.
            only_if=[_NO_CANCEL_REQUEST],
            message_from=_attempt_started,
            before=_BEFORE_CLAIM,
            params=self._estimates_at_start(now),
            now=now,
        )
        if row is None:
            return None
        job_metrics.attempt_started(
            job_id, row.agent, row.attempts, now=now,
            queued_since=row.before_next_attempt_at or row.before_updated_at,
            lost_worker_beat_at=row.before_heartbeat_at if row.before_error_code == "worker_lost" else None,
        )
        return Claim(job_id=job_id, agent=row.agent, input=row.input, attempt=row.attempts, started_at=now,
                     handed_back=row.handed_back)

    def _estimates_at_start(self, now: datetime) -> dict[str, Any]:
        """The parameters of ``_estimate_at_start``: each agent's estimate for an attempt starting now."""
        return {f"estimate_{index}": self.estimator.estimate(name, now, now, 0.0)
                for index, name in enumerate(self._agent_names)}

    def record_progress(self, claim: Claim, percent: float, stage: str, message: str) -> bool:
        """Persist progress (and a heartbeat); returns whether a cancel was requested.

        Raises AttemptSuperseded when the attempt no longer owns the job.
        """
        now = utcnow()
        percent = max(0.0, min(100.0, float(percent)))
        values = {
            "progress_percent": percent,
            "progress_stage": stage[:64],
            "progress_message": message[:500] if message else None,
            "heartbeat_at": now,
            "estimated_completion_at": self.estimator.estimate(claim.agent, claim.started_at, now, percent),
        }
        if on_postgresql() and not in_transaction():
            # Sent with the other running jobs' writes waiting now; its heartbeat and update time
            # are the group's, taken when it is sent.
            row = self._progress_writes.write((claim, values))
        else:
            row = self.write(claim.job_id, to=None, attempt=claim.attempt, values=values, now=now)
        if row is None:
            raise AttemptSuperseded()
        return row.cancel_requested_at is not None

    def cancel_requested(self, claim: Claim) -> bool:
        """Whether the job was asked to stop; raises AttemptSuperseded if it is no longer ours."""
        row = db.session.execute(
            select(Job.cancel_requested_at).where(Job.id == claim.job_id, *attempt_owns_job(claim.attempt))
        ).one_or_none()
        db.session.rollback()  # end the read transaction: workers hold no transaction between writes
        if row is None:
            raise AttemptSuperseded()
        return row.cancel_requested_at is not None

    def succeed(self, claim: Claim, result: dict[str, Any]) -> bool:
        now = utcnow()
        return self.write(
            claim.job_id,
            to=JobStatus.SUCCEEDED,
            attempt=claim.attempt,
            values={
                "result": result,
                "finished_at": now,
                "estimated_completion_at": None,
                "progress_percent": 100.0,
                "progress_stage": "done",
                "progress_message": None,
                "error_code": None,
                "error_message": None,
                "error_retryable": None,
            },
            message="Succeeded",
            now=now,
        ) is not None

    def fail(self, claim: Claim, code: str, message: str, *, retryable: bool = False) -> bool:
        return self.end_failed(claim.job_id, code, message, retryable, attempt=claim.attempt)

    def mark_cancelled(self, claim: Claim) -> bool:
        now = utcnow()
        return self.write(
            claim.job_id,
            to=JobStatus.CANCELLED,
            attempt=claim.attempt,
            values={"finished_at": now, "estimated_completion_at": None},
            message="Cancelled at a checkpoint",
            now=now,
        ) is not None

    def retry_or_fail(self, claim: Claim, code: str, message: str) -> bool:
        """After a transient failure: queue the next attempt with backoff, or fail if none is left.

        Returns True when another attempt was scheduled.
        """
        if claim.counted_attempts >= self.config.max_attempts:
            self.end_failed(
                claim.job_id,
                code,
                f"{message} (gave up after {claim.counted_attempts} attempts)",
                True,
                attempt=claim.attempt,
            )
            return False
        delay_ms = self.retry_delay_ms(claim.attempt)
        now = utcnow()
        due = now + timedelta(milliseconds=delay_ms)
        requeued = self._requeue_or_cancel(
            claim,
            values={
                "next_attempt_at": due,
                "error_code": code,
                "error_message": message,
                "error_retryable": True,
                "progress_stage": "waiting to retry",
                "enqueued_at": due,
            },
            message=f"Attempt {claim.attempt} failed ({code}); retrying in {delay_ms / 1000:.1f} s",
            now=now,
            delay_ms=delay_ms,
        )
        if not requeued:
            return False
        job_metrics.retry_scheduled(claim.job_id, claim.agent, claim.attempt, code, delay_ms)
        return True

    def hand_back(self, claim: Claim, *, reason: str = "its worker shut down") -> bool:
        """Put a running attempt's job back in ``queued`` at once, the attempt not counted.

        For a worker that stops before the attempt finished (a rolling deploy). ``attempts`` stays
        as it is, so this attempt's later writes stay fenced out; ``handed_back`` grows instead.
        A pending cancel request ends the job cancelled rather than queueing it again.
        Returns whether the job went back to the queue.
        """
        now = utcnow()
        return self._requeue_or_cancel(
            claim,
            values={
                "handed_back": _ONE_MORE_HANDED_BACK,
                "next_attempt_at": None,
                "progress_stage": "handed back",
                "enqueued_at": now,
            },
            message=f"Attempt {claim.attempt} handed back unfinished ({reason}); queued again",
            now=now,
        )

    def _requeue_or_cancel(self, claim: Claim, **requeue) -> bool:
        """Requeue the claim's job; if a cancel request refused that, end the job cancelled instead
        (were the attempt superseded, that write is refused too). Returns whether it was requeued."""
        requeued = self.requeue(claim.job_id, claim.agent, attempt=claim.attempt, **requeue)
        if not requeued:
            self.mark_cancelled(claim)
        return requeued

    def requeue(
        self, job_id: str, agent: str, *, attempt: int, values: dict[str, Any], message: str, now: datetime,
        delay_ms: int = 0,
    ) -> bool:
        """Move attempt ``attempt``'s job back to ``queued`` with a new message, sent after the commit.

        Refused (False) when a cancel was requested, since a requeue must not outlive it, or when the
        attempt no longer owns the job.
        """
        next_message = self.messages.new(job_id, agent)
        moved = self.write(
            job_id,
            to=JobStatus.QUEUED,
            attempt=attempt,
            values={**values, "estimated_completion_at": None, "message_id": next_message.message_id},
            only_if=[_NO_CANCEL_REQUEST],
            message=message,
            now=now,
        )
        if moved is None:
            return False
        self.messages.send(next_message, delay_ms=delay_ms)
        return True

    def retry_delay_ms(self, attempt: int) -> int:
        """Exponential backoff with "equal jitter": uniform in [ceiling/2, ceiling], where
        ceiling = min(cap, base * 2^(attempt-1)). Half the wait is kept so retries never bunch up
        at zero; the random half spreads jobs that failed together."""
        ceiling = min(self.config.retry_backoff_max_ms, self.config.retry_backoff_base_ms * 2 ** (attempt - 1))
        return random.randint(ceiling // 2, ceiling) if ceiling > 0 else 0

    def heartbeat(self, claims: Iterable[Claim]) -> int:
        """Refresh the heartbeat of running attempts; not a visible change, so no version bump.

        One statement for all of them (a worker with 250 running jobs made 250 before), fenced as
        ``attempt_owns_job`` fences each: running, and still the same attempt.
        """
        owned = [(claim.job_id, claim.attempt) for claim in claims]
        if not owned:
            return 0
        autocommit_next_statement()
        result = db.session.execute(
            update(Job)
            .where(Job.status == JobStatus.RUNNING.value, tuple_(Job.id, Job.attempts).in_(owned))
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        return result.rowcount

    # ---- the one write path -------------------------------------------------------------------

    def end_failed(
        self,
        job_id: str,
        code: str,
        message: str,
        retryable: bool,
        *,
        attempt: int | None,
        when: Iterable[JobStatus] = (),
    ) -> bool:
        """End the job ``failed``: on behalf of ``attempt`` (fenced), or from one of ``when``."""
        now = utcnow()
        return self.write(
            job_id,
            to=JobStatus.FAILED,
            when=when,
            attempt=attempt,
            values={
                "finished_at": now,
                "estimated_completion_at": None,
                "error_code": code,
                "error_message": message[:2000],
                "error_retryable": retryable,
                "next_attempt_at": None,
            },
            message=f"Failed: {code}",
            now=now,
        ) is not None

    def _statement(self, shape: tuple, build, keep: tuple):
        """The statement of one shape of write, built once per process: building an UPDATE with its
        CTEs costs more CPU than sending it. ``keep`` holds the SQL expressions whose ids are in
        ``shape``, so no other object can take one of those ids while the entry lives."""
        found = self._statements.get(shape)
        if found is not None:
            return found[0]
        statement = build()
        if len(self._statements) < _MAX_STATEMENT_SHAPES:
            self._statements[shape] = (statement, keep)
        return statement

    def write(
        self,
        job_id: str,
        *,
        to: JobStatus | None,
        values: dict[str, Any],
        now: datetime,
        when: Iterable[JobStatus] = (),
        attempt: int | None = None,
        only_if: Iterable[Any] = (),
        message: str | None = None,
        message_from=None,
        before: Iterable[Any] = (),
        params: dict[str, Any] | None = None,
    ):
        """Compare-and-set: apply ``values`` (and the move to ``to``) only if the job allows it.

        With ``attempt``, the write is made on behalf of that attempt and applies only while it owns
        the job (``attempt_owns_job``); otherwise the job must be in one of ``when``. ``to=None``
        keeps the status (a progress or cancel-request write). Returns the changed row (truthy) or
        None; on success the change is committed together with its history event.

        The event's message is ``message``, else ``message_from(Job)`` (a SQL expression over the
        changed row), else the row's progress message. The returned row also carries, as
        ``before_<name>``, the values the ``before`` columns had before the write. SQL expressions
        among ``values``, ``only_if`` and ``before`` must be module-level constants (the statement
        is built once per shape); ``params`` gives their bound parameters.
        """
        if attempt is not None:
            if to is not None and JobStatus.RUNNING not in sources_of(to):
                raise ValueError(f"an attempt cannot move its job to {to.value}")
            allowed: tuple[str, ...] = ()
        else:
            statuses = set(when) if to is None else set(when) & sources_of(to)
            if not statuses:
                raise ValueError("a write needs an attempt or the statuses it may start from")
            allowed = tuple(sorted(s.value for s in statuses))
        only_if, before = tuple(only_if), tuple(before)
        sent = {key: value for key, value in values.items() if not isinstance(value, ClauseElement)}
        computed = {key: value for key, value in values.items() if isinstance(value, ClauseElement)}
        postgresql = on_postgresql()
        shape = (
            postgresql, to, attempt is not None, allowed, tuple(sorted(sent)),
            tuple(sorted((key, id(value)) for key, value in computed.items())),
            tuple(map(id, only_if)), bool(message), id(message_from), tuple(map(id, before)),
        )

        def build():
            if attempt is not None:
                conditions = [Job.id == bindparam("job_id"), *attempt_owns_job(bindparam("attempt"))]
            else:
                # One status is compared with ``=``: an ``IN`` list is expanded into the SQL at every
                # execution (SQLAlchemy's post-compile step), a sixth of a claim's CPU.
                status_matches = Job.status == allowed[0] if len(allowed) == 1 else Job.status.in_(allowed)
                conditions = [Job.id == bindparam("job_id"), status_matches]
            changes = {key: bindparam(f"set_{key}", type_=Job.__table__.c[key].type) for key in sent}
            changes.update(computed, version=Job.version + 1, updated_at=bindparam("now", type_=UTCDateTime()))
            if to is not None:
                changes["status"] = to.value
            if message:
                event_message = bindparam("event_message", type_=String())
            elif message_from is not None:
                event_message = message_from(Job)
            else:
                event_message = Job.progress_message
            returned = returned_with_event(event_message)
            change = (update(Job).where(*conditions, *only_if).values(**changes)
                      .execution_options(synchronize_session=False))
            if postgresql:
                return change_with_event_postgresql(change, returned, list(before))
            prior_select = select(*before).where(Job.id == bindparam("job_id")) if before else None
            return change.returning(*returned), prior_select

        statement = self._statement(shape, build, keep=(*computed.values(), *only_if, *before, message_from))
        bound = dict(params or {}, job_id=job_id, now=now, **{f"set_{key}": value for key, value in sent.items()})
        if attempt is not None:
            bound["attempt"] = attempt
        if message:
            bound["event_message"] = message
        if postgresql:
            row = execute_alone(statement, bound)
        else:
            row = change_then_event(statement, bound)
        if row is None:
            db.session.rollback()
            return None
        commit_if_open()
        # After the commit, never before: a snapshot or a wake-up must not show an uncommitted change.
        self.snapshots.committed(StatusSnapshot.of(row))
        if to in TERMINAL:
            job_metrics.job_finished(job_id, row.agent, row.status, started_at=row.started_at, finished_at=now,
                                     error_code=values.get("error_code"))
        return row
