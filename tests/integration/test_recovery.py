"""Crash recovery: heartbeats, the sweep that requeues or ends abandoned jobs, and lost messages."""
from __future__ import annotations

import time
from datetime import timedelta

import dramatiq
import pytest
from sqlalchemy import text, update

from backend import create_app
from backend.extensions import db
from backend.models import Job, utcnow
from backend.vitals import SWEEP_LOCK_KEY
from tests.conftest import make_key
from tests.helpers import submit, wait_for_status

pytestmark = pytest.mark.integration


@pytest.fixture
def config(config):
    """Vitals fast enough for tests: beat every 0.2 s, dead after 1 s, sweep every 0.2 s."""
    return config.with_overrides(
        heartbeat_interval_s=0.2, heartbeat_timeout_s=1.0, reaper_interval_s=0.2, queued_requeue_after_s=1.0
    )


def _abandon_running(app, job_id: str, seconds_ago: float = 5.0) -> None:
    """Claim the job as a worker would, then 'die': no heartbeat ever comes again."""
    with app.app_context():
        claim = app.extensions["job_service"].attempts.claim(job_id)
        assert claim is not None
        db.session.execute(
            update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds_ago))
        )
        db.session.commit()


def _events(client, auth, job_id):
    return client.get(f"/api/ai/jobs/{job_id}/events", headers=auth).get_json()["events"]


def test_a_job_whose_worker_died_is_queued_again_and_finished_by_a_live_worker(app, client, auth):
    job = submit(client, auth, "echo", {"payload": "survivor"}).get_json()
    _abandon_running(app, job["id"])  # its message was taken by the "dead" worker

    worker = _start_worker(app)
    try:
        final = wait_for_status(client, job["id"], auth, timeout_s=15)
    finally:
        worker.stop()

    details = client.get(f"/api/ai/jobs/{job['id']}", headers=auth).get_json()
    assert final["status"] == "succeeded"
    assert details["attempts"] == 2
    assert details["result"]["payload"] == "survivor"
    assert any("stopped responding" in (e["message"] or "") for e in _events(client, auth, job["id"]))


def test_a_live_worker_keeps_a_long_job_alive_with_heartbeats(client, auth, worker):
    job = submit(client, auth, "echo", {"steps": 6, "delay_ms": 500}).get_json()  # 3 s > 1 s timeout

    final = wait_for_status(client, job["id"], auth, timeout_s=15)

    assert final["status"] == "succeeded"
    assert client.get(f"/api/ai/jobs/{job['id']}", headers=auth).get_json()["attempts"] == 1


def test_a_job_being_cancelled_when_its_worker_died_ends_cancelled_not_requeued(app, client, auth, worker):
    worker.pause()  # before the submit: a live worker must not take the job first
    job = submit(client, auth, "echo", {}).get_json()
    _abandon_running(app, job["id"])
    client.post(f"/api/ai/jobs/{job['id']}/cancel", headers=auth)
    worker.resume()

    final = wait_for_status(client, job["id"], auth, timeout_s=10)

    assert final["status"] == "cancelled"


def test_a_job_that_loses_every_worker_fails_with_worker_lost_after_the_attempt_limit(app, client, auth):
    job = submit(client, auth, "echo", {}).get_json()
    for _ in range(app.extensions["config"].max_attempts - 1):
        _abandon_running(app, job["id"])
        with app.app_context():
            app.extensions["job_queue"].vitals.sweep()
    _abandon_running(app, job["id"])

    with app.app_context():
        counts = app.extensions["job_queue"].vitals.sweep()

    final = client.get(f"/api/ai/jobs/{job['id']}/status", headers=auth).get_json()
    assert counts["failed"] == 1
    assert final["status"] == "failed"
    assert final["error"]["code"] == "worker_lost"
    assert client.get(f"/api/ai/jobs/{job['id']}", headers=auth).get_json()["attempts"] == 3


def test_a_job_whose_message_never_reached_the_broker_is_sent_by_the_sweep(app, client, auth):
    job = submit(client, auth, "echo", {}).get_json()
    # As if Redis had been down at submit time: the row exists, the message does not.
    import redis

    redis.Redis.from_url(app.extensions["config"].redis_url).flushdb()
    with app.app_context():
        db.session.execute(update(Job).where(Job.id == job["id"]).values(enqueued_at=None))
        db.session.commit()

    worker = _start_worker(app)
    try:
        final = wait_for_status(client, job["id"], auth, timeout_s=10)
    finally:
        worker.stop()

    assert final["status"] == "succeeded"


def test_only_one_process_sweeps_at_a_time(app):
    vitals = app.extensions["job_queue"].vitals
    with app.app_context():
        with db.engine.connect() as other_process:
            other_process.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SWEEP_LOCK_KEY})
            skipped = vitals.sweep()
            other_process.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SWEEP_LOCK_KEY})
            other_process.commit()
        ran = vitals.sweep()

    assert skipped is None
    assert ran is not None and set(ran) == {"requeued", "failed", "cancelled", "resent"}


def test_an_attempt_over_its_agent_time_limit_fails_with_timeout(config, client):
    app = create_app(config.with_overrides(agent_time_limits_s=(("echo", 1.0),)))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {make_key(app, 'alice')}"}
    worker = _start_worker(app)
    try:
        job = submit(client, auth, "echo", {"steps": 20, "delay_ms": 250}).get_json()
        final = wait_for_status(client, job["id"], auth, timeout_s=15)
    finally:
        worker.stop()

    assert final["status"] == "failed"
    assert final["error"]["code"] == "timeout"
    assert "1 s" in final["error"]["message"]


def test_the_crash_knob_is_refused_unless_fault_injection_is_enabled(client, auth):
    response = submit(client, auth, "echo", {"crash": True})

    assert response.status_code == 422
    assert "crash" in response.get_json()["detail"]


def _start_worker(app) -> dramatiq.Worker:
    broker = app.extensions["job_queue"].broker
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    return worker


def test_right_after_a_database_outage_running_jobs_are_not_judged_by_their_heartbeats(app, client, auth):
    job = submit(client, auth, "echo", {}).get_json()
    _abandon_running(app, job["id"])  # looks abandoned: exactly what a live job looks like after an outage
    vitals = app.extensions["job_queue"].vitals
    vitals.database_failed()  # this process just saw the database go away

    with app.app_context():
        during = vitals.sweep()
    time.sleep(app.extensions["config"].heartbeat_timeout_s)
    with app.app_context():
        after = vitals.sweep()

    assert during["requeued"] == 0
    assert after["requeued"] == 1


def _duplicate_messages_in_broker(redis_url: str) -> int:
    """Job messages Redis holds (waiting, delayed, or fetched and not yet acked) beyond one per job."""
    import json

    import redis

    client = redis.Redis.from_url(redis_url)
    bodies = [*client.hvals("dramatiq:jobs.msgs"), *client.hvals("dramatiq:jobs.DQ.msgs")]
    job_ids = [json.loads(body)["args"][0] for body in bodies]
    return len(job_ids) - len(set(job_ids))


def test_a_backlog_longer_than_the_requeue_period_gets_no_duplicate_messages(app, client, auth):
    # 12 jobs of 0.4 s on one worker thread: about 5 s of work, five times QUEUED_REQUEUE_AFTER_S.
    ids = [submit(client, auth, "echo", {"steps": 4, "delay_ms": 100}).get_json()["id"] for _ in range(12)]
    redis_url = app.extensions["config"].redis_url
    broker = app.extensions["job_queue"].broker
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    worst_duplicates = 0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with app.app_context():
                unfinished = db.session.scalar(
                    text("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
                )
                db.session.rollback()
            worst_duplicates = max(worst_duplicates, _duplicate_messages_in_broker(redis_url))
            if unfinished == 0:
                break
            time.sleep(0.1)
    finally:
        worker.stop()

    finals = [client.get(f"/api/ai/jobs/{i}", headers=auth).get_json() for i in ids]
    assert [f["status"] for f in finals] == ["succeeded"] * 12
    assert [f["attempts"] for f in finals] == [1] * 12
    assert worst_duplicates == 0, f"the broker held {worst_duplicates} duplicate messages at worst"
