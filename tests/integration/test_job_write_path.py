"""What a submit and a worker's job cost the processes that make them, beyond the writes they must make."""
from __future__ import annotations

import time

import pytest
import redis

from backend.jobs.snapshots import KEY_PREFIX

pytestmark = pytest.mark.integration


def _wait_finished(app, job_id: str, timeout_s: float = 20.0) -> str:
    from backend.jobs import queries

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
