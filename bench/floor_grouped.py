"""The grouped floor: the floor's persisted job with writes grouped across concurrent threads.

``bench/floor_app.py`` makes one statement per write. Here a process's concurrent submits share one
INSERT of their rows and events, its worker threads' claims share one UPDATE, and so do their
successes (``Grouped``: whichever thread finds no group running runs every write waiting, up to
``MAX_GROUP``, while the others wait). The same rows and events are written; each message is sent
once its row is committed, as the floor sends it. Like the floor, not product code: no validation,
no error handling beyond what keeps a group's waiters from hanging.

Imported by gunicorn (``bench.floor_grouped:bare``) and by Dramatiq (``dramatiq bench.floor_grouped``).
``bench/floor.py`` runs it next to the floor and the unpersisted bound.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime, timezone

import dramatiq
from ulid import ULID

from bench.floor_app import broker, engine  # the floor's pool (10, autocommit) and Redis broker

MAX_GROUP = 64
QUEUE_NAME = "floor-grouped"

# unnest() of one array per column: one statement text whatever the group's size, so nothing is
# built per group and PostgreSQL plans it like any other.
SUBMIT = """
WITH job_row AS (
  INSERT INTO jobs (id, owner, agent, input, request_hash, status, progress_percent, attempts, handed_back,
                    version, created_at, updated_at, enqueued_at, message_id)
  SELECT id, 'floor', agent, input, request_hash, 'queued', 0.0, 0, 0, 1, %(now)s, %(now)s, %(now)s, message_id
  FROM unnest(%(ids)s::text[], %(agents)s::text[], %(inputs)s::text[]::json[], %(hashes)s::text[],
              %(message_ids)s::text[]) AS u(id, agent, input, request_hash, message_id)
  RETURNING id)
INSERT INTO job_events (job_id, seq, at, status, percent, stage, message)
SELECT id, 1, %(now)s, 'queued', 0.0, NULL, 'Job accepted' FROM job_row
"""
CLAIM = """
WITH moved AS (
  UPDATE jobs SET status = 'running', attempts = attempts + 1, version = version + 1, started_at = %(now)s,
                  heartbeat_at = %(now)s, updated_at = %(now)s, progress_stage = 'starting'
  WHERE id = ANY(%(ids)s::text[]) AND status = 'queued'
  RETURNING id, version, status, attempts, input, progress_percent, progress_stage),
event AS (
  INSERT INTO job_events (job_id, seq, at, status, percent, stage, message)
  SELECT id, version, %(now)s, status, progress_percent, progress_stage, 'Attempt ' || attempts || ' started'
  FROM moved)
SELECT id, attempts, input FROM moved
"""
SUCCEED = """
WITH moved AS (
  UPDATE jobs SET status = 'succeeded', result = u.result, version = jobs.version + 1, finished_at = %(now)s,
                  updated_at = %(now)s, progress_percent = 100.0, progress_stage = 'done'
  FROM unnest(%(ids)s::text[], %(attempts)s::int[], %(results)s::text[]::json[]) AS u(id, attempt, result)
  WHERE jobs.id = u.id AND jobs.status = 'running' AND jobs.attempts = u.attempt
  RETURNING jobs.id, jobs.version, jobs.status, jobs.progress_percent, jobs.progress_stage),
event AS (
  INSERT INTO job_events (job_id, seq, at, status, percent, stage, message)
  SELECT id, version, %(now)s, status, progress_percent, progress_stage, 'Succeeded' FROM moved)
SELECT id FROM moved
"""


class _Slot:
    __slots__ = ("item", "event", "done", "result", "error")

    def __init__(self, item) -> None:
        self.item, self.event, self.done, self.result, self.error = item, threading.Event(), False, None, None


class Grouped:
    """``run_many(items) -> results`` called once for the items of many threads (flat combining).

    A thread that finds no group running leads: it runs every waiting item (its own first) in one
    call, hands each waiter its result, and passes the lead to the oldest item that arrived
    meanwhile. So a lone thread pays nothing extra, and under load a group holds whatever queued up
    while the previous one ran.
    """

    def __init__(self, run_many) -> None:
        self._run_many = run_many
        self._lock = threading.Lock()
        self._waiting: list[_Slot] = []
        self._leading = False
        self.groups = self.items = 0

    def __call__(self, item):
        slot = _Slot(item)
        with self._lock:
            self._waiting.append(slot)
            leads = not self._leading
            self._leading = True
        if not leads:
            slot.event.wait()
        if not slot.done:  # leading: this slot is the oldest waiting, so it is in this group
            with self._lock:
                group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
            try:
                results = self._run_many([s.item for s in group])
                for s, result in zip(group, results):
                    s.result = result
            except Exception as exc:
                for s in group:
                    s.error = exc
            for s in group:
                s.done = True
                if s is not slot:
                    s.event.set()
            with self._lock:
                self.groups, self.items = self.groups + 1, self.items + len(group)
                following = self._waiting[0] if self._waiting else None
                self._leading = following is not None
            if following is not None:
                following.event.set()  # not done: it leads the next group
        if slot.error is not None:
            raise slot.error
        return slot.result


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


insert_job, claim_job, succeed_job = Grouped(_insert_many), Grouped(_claim_many), Grouped(_succeed_many)


@dramatiq.actor(actor_name="run_grouped_job", queue_name=QUEUE_NAME, max_retries=0, broker=broker)
def run_job(job_id: str) -> None:
    """The floor's job: claim, the echo agent's result, success; the writes grouped with other threads'."""
    claimed = claim_job(job_id)
    if claimed is None:  # a duplicate delivery: already claimed or finished
        return
    _, attempts, job_input = claimed
    succeed_job((job_id, attempts, json.dumps({"payload": job_input.get("payload"), "steps": 0})))


def submit(agent: str, job_input: dict) -> str:
    job_id = "job_" + str(ULID())
    message = run_job.message(job_id)
    request_hash = hashlib.sha256(json.dumps([agent, job_input], sort_keys=True).encode()).hexdigest()
    insert_job((job_id, agent, json.dumps(job_input), request_hash, message.message_id))
    broker.enqueue(message)  # once the row is committed, as the floor sends it
    return job_id


def bare(environ, start_response):
    """The floor's bare WSGI submit with the grouped insert; ``GET`` answers the readiness probe."""
    if environ["REQUEST_METHOD"] == "POST":
        body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        status, answer = "202 Accepted", {"id": submit(body["agent"], body.get("input") or {}), "status": "queued"}
    elif environ.get("PATH_INFO") == "/groups":  # how well the inserts grouped in this process
        status, answer = "200 OK", {"pid": os.getpid(), "groups": insert_job.groups, "items": insert_job.items}
    else:
        status, answer = "200 OK", {"status": "ok"}
    payload = json.dumps(answer).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
