"""The job series move at the moments of a job's life, on the real broker, worker and database."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from backend import metrics
from backend.extensions import db
from backend.models import Job, utcnow
from tests.helpers import submit, wait_for_status

pytestmark = pytest.mark.integration


def counter(metric, *labels) -> float:
    return (metric.labels(*labels) if labels else metric)._value.get()


def observations(histogram, *labels) -> tuple[float, float]:
    """(count, sum) of a histogram child."""
    child = histogram.labels(*labels) if labels else histogram
    return sum(bucket.get() for bucket in child._buckets), child._sum.get()


@pytest.fixture
def config(config):
    return config.with_overrides(heartbeat_interval_s=0.2, heartbeat_timeout_s=1.0, reaper_interval_s=0.2)


def test_a_finished_job_counts_its_status_queue_time_run_time_and_attempt(client, auth, worker):
    finished = counter(metrics.JOBS_FINISHED, "echo", "succeeded")
    queued, _ = observations(metrics.JOB_QUEUE_TIME, "echo")
    ran, _ = observations(metrics.JOB_RUN_TIME, "echo")
    attempts = counter(metrics.JOB_ATTEMPTS, "echo")

    job = submit(client, auth, "echo", {"steps": 2, "delay_ms": 100}).get_json()
    wait_for_status(client, job["id"], auth)

    assert counter(metrics.JOBS_FINISHED, "echo", "succeeded") - finished == 1
    assert counter(metrics.JOB_ATTEMPTS, "echo") - attempts == 1
    assert observations(metrics.JOB_QUEUE_TIME, "echo")[0] - queued == 1
    count, total_s = observations(metrics.JOB_RUN_TIME, "echo")
    assert count - ran == 1
    assert total_s >= 0.2  # two steps of 100 ms


def test_a_transient_failure_counts_a_retry_and_the_final_failure(client, auth, worker):
    retries = counter(metrics.JOB_RETRIES, "echo")
    failed = counter(metrics.JOBS_FINISHED, "echo", "failed")

    job = submit(client, auth, "echo", {"fail": "transient"}).get_json()
    final = wait_for_status(client, job["id"], auth)

    assert final["status"] == "failed"
    assert counter(metrics.JOB_RETRIES, "echo") - retries == 2  # 3 attempts: 2 retries, then it gives up
    assert counter(metrics.JOBS_FINISHED, "echo", "failed") - failed == 1


def test_a_job_recovered_from_a_lost_worker_records_its_recovery_time_and_the_sweep_action(app, client, auth):
    job = submit(client, auth, "echo", {}).get_json()
    with app.app_context():
        assert app.extensions["job_service"].attempts.claim(job["id"]) is not None
        db.session.execute(
            update(Job).where(Job.id == job["id"]).values(heartbeat_at=utcnow() - timedelta(seconds=20))
        )
        db.session.commit()
    recoveries, recovery_sum_s = observations(metrics.RECOVERY_TIME)
    requeued = counter(metrics.SWEEP_ACTIONS, "requeued")

    with app.app_context():
        counts = app.extensions["job_queue"].vitals.sweep()
        assert counts["requeued"] == 1
        assert app.extensions["job_service"].attempts.claim(job["id"]) is not None

    count, total_s = observations(metrics.RECOVERY_TIME)
    assert count - recoveries == 1
    assert 20 <= total_s - recovery_sum_s < 40  # from the lost worker's last beat to running again
    assert counter(metrics.SWEEP_ACTIONS, "requeued") - requeued == 1


def test_a_cancelled_queued_job_counts_as_cancelled_without_a_run_time(client, auth):
    cancelled = counter(metrics.JOBS_FINISHED, "echo", "cancelled")
    ran, _ = observations(metrics.JOB_RUN_TIME, "echo")

    job = submit(client, auth, "echo", {}).get_json()
    client.post(f"/api/ai/jobs/{job['id']}/cancel", headers=auth)

    assert counter(metrics.JOBS_FINISHED, "echo", "cancelled") - cancelled == 1
    assert observations(metrics.JOB_RUN_TIME, "echo")[0] == ran
