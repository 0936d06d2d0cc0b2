"""The job service: the one object HTTP views and Dramatiq actors call, and nothing below it.

It owns submit and cancel itself and hands the rest to one module per concept:
``queries`` (reads), ``transitions`` (every write, and the fence on a worker's attempt),
``sweep`` (what no live worker will do), ``messages`` (sending and tracking job messages),
``idempotency`` (request_id replays) and ``cursors`` (list pages).
"""
from __future__ import annotations

from typing import Any, Mapping

import marshmallow
from sqlalchemy import Float, Integer, String, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from ..agents.base import Agent
from ..extensions import db
from ..ids import new_job_id
from ..models import Job, JobEvent, UTCDateTime, utcnow
from . import idempotency, queries
from .errors import InvalidJobInput, JobAlreadyFinished, JobNotFound, UnknownAgent
from .messages import JobMessages
from .snapshots import StatusSnapshot
from .statements import commit_if_open, execute_alone, on_postgresql
from .status import TERMINAL, JobStatus
from .sweep import Sweep
from .transitions import Transitions

# Imported by callers from here: the service's public vocabulary.
from .transitions import AttemptSuperseded, Claim  # noqa: F401


class JobService:
    """The rules of a job's life. One instance per app, reached through ``current_app``.

    ``attempts`` is what a worker does with the attempt it claimed; ``sweep`` is what the sweeper
    does for the workers that are gone.
    """

    def __init__(self, *, agents: Mapping[str, Agent], queue, config, notifier, snapshots, estimator) -> None:
        self.agents = agents
        # One instance per agent: building a marshmallow schema costs more than a load with it, and
        # a load keeps no state in the instance.
        self._input_schemas = {name: agent.input_schema() for name, agent in agents.items()}
        self.queue = queue
        self.config = config
        self.notifier = notifier
        self.snapshots = snapshots
        self.estimator = estimator
        self.messages = JobMessages(queue=queue, agents=agents)
        self.attempts = Transitions(config=config, snapshots=snapshots, estimator=estimator, messages=self.messages)
        self.sweep = Sweep(transitions=self.attempts, messages=self.messages, config=config)

    # ---- what callers over HTTP ask for -------------------------------------------------------

    def submit(
        self, owner: str, agent_name: str, job_input: Mapping[str, Any], request_id: str | None
    ) -> tuple[Job, bool]:
        """Create a job and queue it; with a known request_id return the first job instead.

        Returns ``(job, created)``. The row (naming its message) is committed before the message is
        sent, so a broker outage never loses an accepted job: the sweep sends it later.
        """
        agent = self.agents.get(agent_name)
        if agent is None:
            raise UnknownAgent(
                f"Unknown agent {agent_name!r}; enabled agents: {', '.join(sorted(self.agents))}.",
                errors={"json": {"agent": [f"Must be one of: {', '.join(sorted(self.agents))}."]}},
            )
        try:
            loaded = self._input_schemas[agent_name].load(job_input)
        except marshmallow.ValidationError as exc:
            raise InvalidJobInput(errors={"json": {"input": exc.normalized_messages()}}) from None
        body_hash = idempotency.request_hash(agent_name, loaded)

        if request_id is not None:
            existing = idempotency.job_for_request_id(owner, request_id)
            if existing is not None:
                return idempotency.replay(existing, body_hash), False

        now = utcnow()
        job_id = new_job_id()
        message = self.messages.new(job_id, agent_name)
        columns = dict(
            id=job_id,
            owner=owner,
            agent=agent_name,
            input=loaded,
            request_id=request_id,
            request_hash=body_hash,
            status=JobStatus.QUEUED.value,
            progress_percent=0.0,
            attempts=0,
            handed_back=0,
            version=1,
            created_at=now,
            updated_at=now,
            enqueued_at=now,
            message_id=message.message_id,
        )
        # Not added to the session: the row is written by one statement below, and the answer is
        # built from this object, so nothing is read back after the commit.
        job = Job(**columns)
        snapshot = StatusSnapshot.of(job)
        try:
            _insert_with_accepted_event(columns, now)
            commit_if_open()
        except IntegrityError:
            # Another request with the same request_id won the insert race.
            db.session.rollback()
            existing = idempotency.job_for_request_id(owner, request_id) if request_id else None
            if existing is None:
                raise
            return idempotency.replay(existing, body_hash), False
        # Before the message goes out: polls of the new job need no database read from the start.
        self.snapshots.committed(snapshot, signal=False)
        self.messages.send(message)
        return job, True

    def cancel(self, owner: str, job_id: str) -> Job:
        """Cancel a queued job at once; ask a running one to stop at its next checkpoint.

        Idempotent: a job already cancelled, or already asked to stop, is answered as it stands
        (a client that lost the first answer may safely ask again). Only a job that ended
        otherwise (succeeded, failed) refuses.
        """
        for _ in range(5):
            job = queries.get(owner, job_id)
            status = JobStatus(job.status)
            if status is JobStatus.CANCELLED or (status not in TERMINAL and job.cancel_requested_at is not None):
                return job
            if status in TERMINAL:
                raise JobAlreadyFinished(
                    f"The job already ended with status {status.value!r}; it cannot be cancelled."
                )
            now = utcnow()
            if status is JobStatus.QUEUED:
                moved = self.attempts.write(
                    job_id,
                    to=JobStatus.CANCELLED,
                    when=[JobStatus.QUEUED],
                    values={
                        "cancel_requested_at": now,
                        "finished_at": now,
                        "next_attempt_at": None,
                        "estimated_completion_at": None,
                    },
                    message="Cancelled before it started",
                    now=now,
                )
            else:
                moved = self.attempts.write(
                    job_id,
                    to=None,
                    when=[JobStatus.RUNNING],
                    values={"cancel_requested_at": now},
                    message="Cancellation requested",
                    now=now,
                )
            if moved is not None:
                db.session.expire_all()
                return queries.get(owner, job_id)
            # The job changed between the read and the write (a worker claimed or finished it).
        raise JobAlreadyFinished("The job kept changing while it was being cancelled; try again.")

    # ---- reads --------------------------------------------------------------------------------

    def get(self, owner: str, job_id: str) -> Job:
        return queries.get(owner, job_id)

    def status(self, owner: str, job_id: str, held_version: int = 0) -> StatusSnapshot:
        """The job's status as last committed, for a poll; JobNotFound if it is not the owner's."""
        found = self.statuses(owner, [job_id], {job_id: held_version}).get(job_id)
        if found is None:
            raise JobNotFound()
        return found

    def known_status(self, owner: str, job_id: str) -> StatusSnapshot | None:
        """The job's status as this process last heard of it (no I/O), if known and the owner's."""
        known = self.snapshots.known(job_id)
        return known if known is not None and known.owner == owner else None

    def statuses(
        self, owner: str, job_ids: list[str], held_versions: Mapping[str, int] | None = None
    ) -> dict[str, StatusSnapshot]:
        """The owner's jobs among ``job_ids``, as status snapshots; others' and unknown ids are absent.

        What this process heard of the jobs first (no I/O; not when the caller holds a newer version
        from ``held_versions``), then the others' snapshots from Redis in
        one round trip. The database is read only for ids with no snapshot (and the snapshots
        refilled from what it gave), for every id while Redis is away, and for queued jobs, whose
        place in the queue moves with other jobs' claims.
        """
        found, unknown = {}, []
        held_versions = held_versions or {}
        for job_id in job_ids:  # first what this process heard of: no round trip at all
            known = self.snapshots.known(job_id)
            # Unless the caller holds a newer version: a change whose signal is still on its way.
            if known is None or known.version < held_versions.get(job_id, 0):
                unknown.append(job_id)
            elif known.owner == owner:
                found[job_id] = known
        held = (self.snapshots.read(unknown) or {}) if unknown else {}
        found.update((i, s) for i, s in held.items() if s.owner == owner and not s.is_queued)
        unread = [i for i in unknown if i not in held or held[i].is_queued]
        if unread:
            jobs = queries.get_many(owner, unread)
            fresh = {job_id: StatusSnapshot.of(job) for job_id, job in jobs.items()}
            self.snapshots.refill(s for i, s in fresh.items() if i not in held)
            found.update(fresh)
        return found

    def list(self, owner: str, **filters) -> tuple[list[Job], str | None]:
        return queries.list_jobs(owner, **filters)

    def events(self, owner: str, job_id: str, after: int = 0) -> list[JobEvent]:
        return queries.events(owner, job_id, after)


_ACCEPTED_EVENT = ("job_id", "seq", "at", "status", "percent", "stage", "message")
# The submit statement per set of columns, built once: building it costs more CPU than sending it.
_SUBMIT_STATEMENTS: dict[tuple[str, ...], Any] = {}


def _submit_statement(names: tuple[str, ...]):
    """``WITH job_row AS (INSERT INTO jobs ... RETURNING id) INSERT INTO job_events SELECT ... FROM
    job_row``: the row and its 'Job accepted' event in one statement, every value a parameter."""
    statement = _SUBMIT_STATEMENTS.get(names)
    if statement is None:
        # Core tables, not the ORM entities: a plain statement with parameters, no ORM bulk semantics.
        columns = Job.__table__.c
        job_row = (insert(Job.__table__).values({name: bindparam(name, type_=columns[name].type) for name in names})
                   .returning(columns.id).cte("job_row"))
        accepted = select(
            job_row.c.id, bindparam("event_seq", type_=Integer()), bindparam("event_at", type_=UTCDateTime()),
            bindparam("event_status", type_=String()), bindparam("event_percent", type_=Float()),
            bindparam("event_stage", type_=String()), bindparam("event_message", type_=String()),
        )
        statement = _SUBMIT_STATEMENTS[names] = (
            insert(JobEvent.__table__).from_select(_ACCEPTED_EVENT, accepted).add_cte(job_row)
        )
    return statement


def _insert_with_accepted_event(columns: dict[str, Any], now) -> None:
    """The new job's row and its first history event: one statement on PostgreSQL (a data-modifying
    CTE, sent in autocommit when no transaction is open), two in the session's transaction elsewhere."""
    event = dict(seq=columns["version"], at=now, status=columns["status"], percent=0.0, stage=None,
                 message="Job accepted")
    if not on_postgresql():
        db.session.execute(insert(Job).values(**columns))
        db.session.execute(insert(JobEvent).values(job_id=columns["id"], **event))
        return
    statement = _submit_statement(tuple(sorted(columns)))
    execute_alone(statement, dict(columns, **{f"event_{key}": value for key, value in event.items()}))
