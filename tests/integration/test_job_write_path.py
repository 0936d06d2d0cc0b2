"""A submit and a worker's job, made cheaper: the answers and writes they must make, and nothing more."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import redis
from flask import jsonify

from backend.api.jobs import accepted_headers
from backend.api.schemas import JobSchema
from backend.jobs import queries
from backend.jobs.snapshots import KEY_PREFIX
from backend.jobs.transitions import AttemptSuperseded

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


class TestProgressWritesOfManyJobs:
    """A worker's running jobs report progress in waves; a wave goes to PostgreSQL as one statement."""

    def _running(self, app, n: int) -> list:
        service = app.extensions["job_service"]
        with app.app_context():
            jobs = [service.submit("alice", "echo", {}, None)[0] for _ in range(n)]
            return [service.attempts.claim(job.id) for job in jobs]

    def _hold_first_group(self, attempts):
        """Holds the writer's first group until released, so the writes after it queue up as one."""
        from threading import Event

        writes, send = attempts._progress_writes, attempts._progress_writes._write_many
        started, release = Event(), Event()

        def held(items):
            if not started.is_set():
                started.set()
                assert release.wait(10)
            return send(items)

        writes._write_many = held
        return started, release

    def _report(self, app, claims_and_percents):
        from concurrent.futures import ThreadPoolExecutor

        attempts = app.extensions["job_service"].attempts

        def report(claim_and_percent):
            claim, percent = claim_and_percent
            with app.app_context():
                try:
                    return attempts.record_progress(claim, percent, "work", f"at {percent}")
                except AttemptSuperseded as exc:
                    return exc

        pool = ThreadPoolExecutor(len(claims_and_percents))
        return pool, [pool.submit(report, item) for item in claims_and_percents]

    def _updates(self, app) -> list[str]:
        from sqlalchemy import event

        from backend.extensions import db

        seen: list[str] = []

        def before(conn, cursor, statement, parameters, context, executemany):
            if "UPDATE jobs SET progress_percent" in statement:
                seen.append(statement)

        with app.app_context():
            event.listen(db.engine, "before_cursor_execute", before)
        return seen

    def test_writes_that_queue_behind_a_group_are_one_statement_and_each_job_gets_its_own_row(self, app, config):
        from backend.extensions import db
        from backend.models import Job, JobEvent

        claims = self._running(app, 9)
        attempts = app.extensions["job_service"].attempts
        started, release = self._hold_first_group(attempts)
        updates = self._updates(app)
        first_pool, first = self._report(app, [(claims[0], 5.0)])
        assert started.wait(10)
        pool, rest = self._report(app, [(claim, 10.0 + n) for n, claim in enumerate(claims[1:])])
        deadline = time.monotonic() + 10
        while len(attempts._progress_writes._waiting) < 8 and time.monotonic() < deadline:
            time.sleep(0.005)
        release.set()

        assert [future.result(10) for future in first + rest] == [False] * 9  # no cancel requested
        assert len(updates) == 2  # the held group of one, then the other eight together
        with app.app_context():
            for n, claim in enumerate(claims):
                job = db.session.get(Job, claim.job_id)
                percent = 5.0 if n == 0 else 10.0 + n - 1
                assert (job.progress_percent, job.progress_message, job.version) == (percent, f"at {percent}", 3)
                events = db.session.query(JobEvent).filter_by(job_id=claim.job_id).order_by(JobEvent.seq).all()
                assert [(e.seq, e.status, e.percent, e.message) for e in events][-1] == (
                    3, "running", percent, f"at {percent}")
        stored = redis.Redis.from_url(config.redis_url)
        assert {stored.hget(KEY_PREFIX + claim.job_id, "v") for claim in claims} == {b"3"}
        first_pool.shutdown()
        pool.shutdown()

    def test_in_one_group_a_superseded_attempt_is_refused_and_a_cancel_request_is_seen_by_its_own_job(self, app):
        from backend.extensions import db
        from backend.models import Job

        service = app.extensions["job_service"]
        finished, cancelled, plain = self._running(app, 3)
        with app.app_context():
            assert service.attempts.succeed(finished, {"done": True})
            service.cancel("alice", cancelled.job_id)
        started, release = self._hold_first_group(service.attempts)
        holder_pool, holder = self._report(app, [(plain, 1.0)])
        assert started.wait(10)
        pool, answers = self._report(app, [(finished, 50.0), (cancelled, 50.0), (plain, 50.0)])
        deadline = time.monotonic() + 10
        while len(service.attempts._progress_writes._waiting) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        release.set()

        late, asked_to_stop, going_on = (future.result(10) for future in answers)
        assert isinstance(late, AttemptSuperseded)
        assert asked_to_stop is True
        assert going_on is False
        assert holder[0].result(10) is False
        with app.app_context():
            job = db.session.get(Job, finished.job_id)
            assert (job.status, job.progress_percent) == ("succeeded", 100.0)  # not moved back
        holder_pool.shutdown()
        pool.shutdown()

    def test_a_grouped_write_finds_its_jobs_through_an_index_on_a_large_table(self, app):
        from sqlalchemy import text

        from backend.extensions import db
        from backend.jobs.progress_writes import PROGRESS_OF_MANY
        from tests.integration.test_retention import add_finished_jobs

        claims = self._running(app, 3)
        with app.app_context():
            add_finished_jobs(20_000, age_days=1)
            db.session.execute(text("ANALYZE jobs"))
            db.session.commit()
            compiled = PROGRESS_OF_MANY.compile(dialect=db.engine.dialect)
            params = compiled.construct_params({
                "item_ids": [c.job_id for c in claims], "item_attempts": [1, 1, 1], "item_percents": [1.0] * 3,
                "item_stages": ["s"] * 3, "item_messages": [None] * 3, "item_estimates": [None] * 3,
                "now": datetime.now(timezone.utc)})
            with db.engine.connect() as connection:
                plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {compiled}", params))
                connection.rollback()

        assert "Seq Scan on jobs" not in plan, plan
        assert "Index Scan" in plan, plan
