"""The grouped floor: the floor's persisted job with writes grouped across concurrent threads.

``bench/floor_app.py`` makes one statement per write. Here a process's concurrent submits share one
INSERT of their rows and events, its worker threads' claims share one UPDATE, and so do their
successes (``backend.jobs.grouped.GroupedWrites``, the service's own: a writer thread sends every
write waiting as one statement while their callers wait). The same rows and events are written; each message is sent
once its row is committed, as the floor sends it. Like the floor, not product code: no validation,
no error handling beyond what keeps a group's waiters from hanging.

Imported by gunicorn (``bench.floor_grouped:bare``) and by Dramatiq (``dramatiq bench.floor_grouped``).
``bench/floor.py`` runs it next to the floor and the unpersisted bound.
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone

import dramatiq
from ulid import ULID

from backend.jobs.grouped import GroupedWrites
from bench.floor_app import broker, engine  # the floor's pool (10, autocommit) and Redis broker
from bench.grouped_statements import CLAIM, SUBMIT, SUCCEED

QUEUE_NAME = "floor-grouped"

def _now() -> datetime:
    return datetime.now(timezone.utc)


def _insert_many(items: list[tuple]) -> list[None]:
    with engine.connect() as connection:
        connection.exec_driver_sql(SUBMIT, {
            "now": _now(), "ids": [i[0] for i in items], "agents": [i[1] for i in items],
            "inputs": [i[2] for i in items], "hashes": [i[3] for i in items], "message_ids": [i[4] for i in items]})
    return [None] * len(items)


def _claim_many(job_ids: list[str]) -> list[tuple | None]:
    with engine.connect() as connection:
        rows = {row[0]: row for row in connection.exec_driver_sql(CLAIM, {"now": _now(), "ids": job_ids})}
    return [rows.get(job_id) for job_id in job_ids]


def _succeed_many(items: list[tuple]) -> list[bool]:
    with engine.connect() as connection:
        done = {row[0] for row in connection.exec_driver_sql(SUCCEED, {
            "now": _now(), "ids": [i[0] for i in items], "attempts": [i[1] for i in items],
            "results": [i[2] for i in items]})}
    return [i[0] in done for i in items]


# The service's own grouping (a writer thread per process), so the floor measures its mechanism.
inserts, claims, successes = (GroupedWrites(write_many, name=name) for write_many, name in (
    (_insert_many, "floor-inserts"), (_claim_many, "floor-claims"), (_succeed_many, "floor-successes")))


@dramatiq.actor(actor_name="run_grouped_job", queue_name=QUEUE_NAME, max_retries=0, broker=broker)
def run_job(job_id: str) -> None:
    """The floor's job: claim, the echo agent's result, success; the writes grouped with other threads'."""
    claimed = claims.write(job_id)
    if claimed is None:  # a duplicate delivery: already claimed or finished
        return
    _, attempts, job_input = claimed
    successes.write((job_id, attempts, json.dumps({"payload": job_input.get("payload"), "steps": 0})))


def submit(agent: str, job_input: dict) -> str:
    job_id = "job_" + str(ULID())
    message = run_job.message(job_id)
    request_hash = hashlib.sha256(json.dumps([agent, job_input], sort_keys=True).encode()).hexdigest()
    inserts.write((job_id, agent, json.dumps(job_input), request_hash, message.message_id))
    broker.enqueue(message)  # once the row is committed, as the floor sends it
    return job_id


def bare(environ, start_response):
    """The floor's bare WSGI submit with the grouped insert; ``GET`` answers the readiness probe."""
    if environ["REQUEST_METHOD"] == "POST":
        body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        status, answer = "202 Accepted", {"id": submit(body["agent"], body.get("input") or {}), "status": "queued"}
    elif environ.get("PATH_INFO") == "/groups":  # how well the inserts grouped in this process
        status, answer = "200 OK", {"pid": os.getpid(), "groups": inserts.groups, "items": inserts.items}
    else:
        status, answer = "200 OK", {"status": "ok"}
    payload = json.dumps(answer).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
