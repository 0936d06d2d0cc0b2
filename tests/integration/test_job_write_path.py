"""A submit and a worker's job, made cheaper: the answers and writes they must make, and nothing more."""
from __future__ import annotations

import time

import pytest
import redis
from flask import jsonify

from backend.api.jobs import accepted_headers
from backend.api.schemas import JobSchema
from backend.jobs import queries
from backend.jobs.snapshots import KEY_PREFIX

pytestmark = pytest.mark.integration


def _wait_finished(app, job_id: str, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with app.app_context():
            status = queries.get("alice", job_id).status
        if status in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


def test_a_process_that_only_runs_jobs_does_not_listen_to_every_jobs_changes(app, worker, config):
    service = app.extensions["job_service"]
    with app.app_context():
        job, _ = service.submit("alice", "echo", {}, None)

    assert _wait_finished(app, job.id) == "succeeded"
    time.sleep(0.3)  # a listener started by the writes would have subscribed by now

    # The job's changes were stored and signalled for the web processes; this one never subscribed.
    assert not service.notifier.subscribed
    stored = redis.Redis.from_url(config.redis_url).hget(KEY_PREFIX + job.id, "s")
    assert stored == b"succeeded"


@pytest.mark.parametrize("body", [
    {"agent": "echo", "input": {"steps": 2, "payload": 'Planned "3" shapes \u00e9'}},
    {"agent": "echo", "input": {}, "request_id": "order-1234:render"},
    {"input": {"prompt": "three red circles"}},
])
def test_the_hand_built_submit_answer_is_what_the_job_schema_dumps(app, client, auth, body):
    answer = client.post("/api/ai/jobs", json=body, headers=auth)
    assert answer.status_code == 202

    with app.test_request_context():
        job = queries.get("alice", answer.get_json()["id"])
        job.queue_position = None  # the 202 is answered before any place in the queue is read
        # The hint follows the clock and the load of the moment: the answer's, so the rest compares.
        job.__dict__["_poll_hint"] = ((job.version, job.status), answer.get_json()["poll_after_ms"])
        dumped = jsonify(JobSchema().dump(job))
        headers = accepted_headers(job)

    assert answer.get_data() == dumped.get_data()  # byte for byte: members, order, escapes, newline
    assert answer.mimetype == dumped.mimetype
    assert {name: answer.headers[name] for name in headers} == headers


def _claim_statements_by_isolation(app) -> list[str]:
    """The isolation level each claim statement (``WITH moved AS (UPDATE ...``) is sent under."""
    from sqlalchemy import event

    from backend.extensions import db

    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("WITH moved AS") and "attempts=(jobs.attempts + " in statement:
            seen.append(conn.get_execution_options().get("isolation_level", "in a transaction"))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", before)
    return seen


def test_a_claim_after_its_agents_history_was_read_is_still_sent_alone_in_autocommit(app):
    # The first claim of an agent in a process reads the agent's recent run times for its estimate.
    service = app.extensions["job_service"]
    seen = _claim_statements_by_isolation(app)
    with app.app_context():
        job, _ = service.submit("alice", "echo", {}, None)
        claim = service.attempts.claim(job.id)
        from backend.extensions import db

        assert claim is not None
        assert not db.session().in_transaction()  # no read transaction left open behind the claim

    assert seen == ["AUTOCOMMIT"]


def test_threads_that_find_an_agents_history_stale_read_it_once(app):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from sqlalchemy import event

    from backend.extensions import db

    estimator = app.extensions["job_service"].estimator
    reads: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT jobs.started_at, jobs.finished_at"):
            reads.append(statement)

    threads = 8
    barrier = Barrier(threads)

    def estimate(_):
        with app.app_context():
            barrier.wait()
            try:
                return estimator.typical_duration_s("echo")
            finally:
                db.session.remove()

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", count)
    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(estimate, range(threads)))

    assert answers == [None] * threads  # no echo job has succeeded yet
    assert len(reads) == 1
