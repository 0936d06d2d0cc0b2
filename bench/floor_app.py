"""The floor's textbook service: a submit and a job done by the thinnest code on the project's libraries.

Imported by gunicorn (``bench.floor_app:app``, Flask; ``bench.floor_app:bare``, the same submit as a
bare WSGI callable; ``bench.floor_app:unpersisted``, the bound: a bare submit that only sends a no-op) and by Dramatiq (``dramatiq bench.floor_app``, the actor). It writes what the
service writes for an echo job with no steps, on the project's own tables: the job row and its
"Job accepted" event at submit, then a claim and a success, each a row change plus its history
event. Each write is one statement in autocommit (a data-modifying CTE), as the service sends them,
so the database work is the same and what differs is everything around it: no flask-smorest, no
marshmallow, no auth, no rate limits, no snapshots, no metrics, no message tracking, no heartbeats.

Not product code: no validation, no error handling, no idempotency. ``bench/floor.py`` runs it.
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from flask import Flask, request
from sqlalchemy import (JSON, Column, DateTime, Float, Integer, MetaData, String, Table, bindparam, cast,
                        create_engine, insert, literal, select, update)
from ulid import ULID

# The columns of the migrated tables that these writes touch (the migration owns the schema).
_metadata = MetaData()
jobs = Table(
    "jobs", _metadata,
    Column("id", String, primary_key=True), Column("owner", String), Column("agent", String),
    Column("input", JSON), Column("request_id", String), Column("request_hash", String),
    Column("status", String), Column("progress_percent", Float), Column("progress_stage", String),
    Column("progress_message", String), Column("result", JSON), Column("attempts", Integer),
    Column("handed_back", Integer), Column("version", Integer),
    *(Column(name, DateTime(timezone=True)) for name in (
        "created_at", "updated_at", "enqueued_at", "started_at", "heartbeat_at", "finished_at")),
    Column("message_id", String),
)
job_events = Table(
    "job_events", _metadata,
    Column("job_id", String, primary_key=True), Column("seq", Integer, primary_key=True),
    Column("at", DateTime(timezone=True)), Column("status", String), Column("percent", Float),
    Column("stage", String), Column("message", String),
)
_EVENT_COLUMNS = ["job_id", "seq", "at", "status", "percent", "stage", "message"]
_NOW = bindparam("now", type_=DateTime(timezone=True))

# The service's pool settings (10, no overflow), in autocommit: no BEGIN or COMMIT round trips.
# create_engine connects lazily, so processes forked after import each open their own connections.
engine = create_engine(os.environ["DATABASE_URL"], pool_size=10, max_overflow=0, isolation_level="AUTOCOMMIT")

broker = RedisBroker(url=os.environ["REDIS_URL"])
dramatiq.set_broker(broker)

# ---- the statements, built once (building one costs more CPU than sending it) -------------------------

_SUBMIT_KEYS = ("id", "owner", "agent", "input", "request_hash", "status", "progress_percent", "attempts",
                "handed_back", "version", "created_at", "updated_at", "enqueued_at", "message_id")
_job_row = (insert(jobs).values({key: bindparam(key, type_=jobs.c[key].type) for key in _SUBMIT_KEYS})
            .returning(jobs.c.id).cte("job_row"))
# INSERT the row and, from what it returned, its first event: one statement, one round trip.
SUBMIT = insert(job_events).from_select(
    _EVENT_COLUMNS,
    select(_job_row.c.id, literal(1), _NOW, literal("queued"), literal(0.0), literal(None, String),
           literal("Job accepted")),
).add_cte(_job_row)


def _change_with_event(change, message):
    """``WITH moved AS (UPDATE ... RETURNING ...), event AS (INSERT INTO job_events SELECT ... FROM moved)
    SELECT * FROM moved``: a transition and its history event in one statement."""
    moved = change.returning(jobs.c.id, jobs.c.version, jobs.c.status, jobs.c.attempts, jobs.c.input,
                             jobs.c.progress_percent, jobs.c.progress_stage).cte("moved")
    event = insert(job_events).from_select(
        _EVENT_COLUMNS,
        select(moved.c.id, moved.c.version, _NOW, moved.c.status, moved.c.progress_percent,
               moved.c.progress_stage, message(moved)),
    ).cte("event")
    return select(moved).add_cte(event)


CLAIM = _change_with_event(
    update(jobs).where(jobs.c.id == bindparam("job_id"), jobs.c.status == "queued").values(
        status="running", attempts=jobs.c.attempts + 1, version=jobs.c.version + 1, started_at=_NOW,
        heartbeat_at=_NOW, updated_at=_NOW, progress_stage="starting"),
    lambda moved: literal("Attempt ") + cast(moved.c.attempts, String) + literal(" started"),
)
SUCCEED = _change_with_event(
    update(jobs).where(jobs.c.id == bindparam("job_id"), jobs.c.status == "running",
                       jobs.c.attempts == bindparam("attempt")).values(
        status="succeeded", result=bindparam("result", type_=JSON()), version=jobs.c.version + 1,
        finished_at=_NOW, updated_at=_NOW, progress_percent=100.0, progress_stage="done"),
    lambda moved: literal("Succeeded"),
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ---- the job ------------------------------------------------------------------------------------------


@dramatiq.actor(queue_name="floor", max_retries=0)
def run_job(job_id: str) -> None:
    """Claim the job, run the echo agent with no steps (its result, nothing else), record the success."""
    with engine.connect() as connection:
        claimed = connection.execute(CLAIM, {"job_id": job_id, "now": _now()}).one_or_none()
    if claimed is None:  # a duplicate delivery: already claimed or finished
        return
    result = {"payload": claimed.input.get("payload"), "steps": 0}
    with engine.connect() as connection:
        connection.execute(SUCCEED, {"job_id": job_id, "attempt": claimed.attempts, "result": result,
                                     "now": _now()}).one_or_none()


# ---- the submit -----------------------------------------------------------------------------------------


def submit(agent: str, job_input: dict) -> str:
    """Write the job and its accepted event, then send its message; returns the job's id."""
    now = _now()
    job_id = "job_" + str(ULID())
    # run_job.send(job_id), split in two so that the row can name its message, as the service's does.
    message = run_job.message(job_id)
    request_hash = hashlib.sha256(json.dumps([agent, job_input], sort_keys=True).encode()).hexdigest()
    with engine.connect() as connection:
        connection.execute(SUBMIT, {
            "id": job_id, "owner": "floor", "agent": agent, "input": job_input, "request_hash": request_hash,
            "status": "queued", "progress_percent": 0.0, "attempts": 0, "handed_back": 0, "version": 1,
            "created_at": now, "updated_at": now, "enqueued_at": now, "message_id": message.message_id,
            "now": now,
        })
    broker.enqueue(message)
    return job_id


app = Flask(__name__)


@app.get("/ping")
def ping():
    return {"status": "ok"}


@app.post("/jobs")
def post_job():
    body = request.get_json()
    return {"id": submit(body["agent"], body.get("input") or {}), "status": "queued"}, 202


def bare(environ, start_response):
    """The same submit with no framework: what Flask itself costs is the difference."""
    if environ["REQUEST_METHOD"] == "POST":
        body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        status, answer = "202 Accepted", {"id": submit(body["agent"], body.get("input") or {}), "status": "queued"}
    else:
        status, answer = "200 OK", {"status": "ok"}
    payload = json.dumps(answer).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def unpersisted(environ, start_response):
    """The bound no design can pass: a bare WSGI submit that stores nothing and sends a ``bench.noop``
    message, so a job is one HTTP request, one Dramatiq send and one no-op run. Whatever persistence
    a design adds, grouped or not, comes on top of this."""
    from bench import noop  # here, not at import: the floor's Dramatiq workers must not import it

    if environ["REQUEST_METHOD"] == "POST":
        json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        job_id = "job_" + str(ULID())
        noop.noop.send(0)
        status, answer = "202 Accepted", {"id": job_id, "status": "queued"}
    else:
        status, answer = "200 OK", {"status": "ok"}
    payload = json.dumps(answer).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
