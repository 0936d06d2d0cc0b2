"""Rolling deploys: a worker told to stop (SIGTERM, or Ctrl-C in `make run`) lets its running jobs
finish within WORKER_SHUTDOWN_GRACE_S, then hands back the rest: queued again at once, the attempt
not counted against JOB_MAX_ATTEMPTS, and the old attempt still fenced out. Both brokers."""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend import create_app
from backend.config import Config
from backend.embedded import start_embedded_worker
from backend.extensions import db
from backend.jobs.transitions import AttemptSuperseded
from backend.models import Job
from tests.conftest import BROKERS
from tests.helpers import submit, wait_for_status

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# 50 steps of 200 ms: a job that is surely still running when its worker is told to stop.
LONG_JOB = {"steps": 50, "delay_ms": 200, "payload": "long"}


def _events(client, auth, job_id):
    return client.get(f"/api/ai/jobs/{job_id}/events", headers=auth).get_json()["events"]


def _handed_back(app, job_id: str) -> int:
    with app.app_context():
        value = db.session.get(Job, job_id).handed_back
        db.session.rollback()
        return value


def _start_worker_command(config, *, grace_s: float) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=config.database_url, REDIS_URL=config.redis_url,
               BROKER_URL=config.broker_url or config.redis_url, WORKER_SHUTDOWN_GRACE_S=str(grace_s), LOG_FORMAT="text")
    return subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "backend.worker", "--processes", "1", "--threads", "2",
         "--worker-shutdown-timeout", "5000"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def _kill(process: subprocess.Popen | None) -> None:
    """SIGKILL the command and the worker process it forked (one process group)."""
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        print(process.communicate(timeout=10)[0][-5000:])


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_a_submitted_job_runs_to_success_on_each_broker(broker_kind, client, auth, worker):
    job = submit(client, auth, "echo", {"payload": broker_kind, "steps": 2}).get_json()

    final = wait_for_status(client, job["id"], auth, timeout_s=30)

    assert final["status"] == "succeeded"
    assert client.get(f"/api/ai/jobs/{job['id']}", headers=auth).get_json()["result"]["payload"] == broker_kind
    assert client.get("/health/ready").get_json()["checks"]["broker"]["ok"] is True


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_sigterm_hands_a_running_job_back_at_once_and_another_worker_finishes_it(
    broker_kind, app, config, client, auth
):
    first = _start_worker_command(config, grace_s=1.0)
    second = None
    try:
        job = submit(client, auth, "echo", LONG_JOB).get_json()
        wait_for_status(client, job["id"], auth, statuses={"running"}, timeout_s=30)
        signalled_at = time.monotonic()
        first.send_signal(signal.SIGTERM)
        wait_for_status(client, job["id"], auth, statuses={"queued"}, timeout_s=config.heartbeat_timeout_s)
        requeued_after_s = time.monotonic() - signalled_at
        output, _ = first.communicate(timeout=30)

        second = _start_worker_command(config, grace_s=1.0)
        final = wait_for_status(client, job["id"], auth, timeout_s=60)
    finally:
        _kill(first)
        _kill(second)

    assert "waiting for 1 running job, 1 s left" in output
    # Back in the queue within the grace and the hand-back wait, long before the heartbeat timeout.
    assert requeued_after_s < config.heartbeat_timeout_s, output[-2000:]
    assert final["status"] == "succeeded"
    details = client.get(f"/api/ai/jobs/{job['id']}", headers=auth).get_json()
    assert details["attempts"] == 2
    assert _handed_back(app, job["id"]) == 1
    messages = [e["message"] or "" for e in _events(client, auth, job["id"])]
    assert any("Attempt 1 handed back unfinished" in m for m in messages)
    assert not any("stopped responding" in m or "Failed" in m for m in messages)


def test_a_job_that_finishes_within_the_grace_is_not_handed_back(app, config, client, auth):
    worker = _start_worker_command(config, grace_s=20.0)
    try:
        job = submit(client, auth, "echo", {"steps": 10, "delay_ms": 200}).get_json()
        wait_for_status(client, job["id"], auth, statuses={"running"}, timeout_s=30)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    finally:
        _kill(worker)

    details = client.get(f"/api/ai/jobs/{job['id']}", headers=auth).get_json()
    assert details["status"] == "succeeded", output[-2000:]
    assert details["attempts"] == 1
    assert _handed_back(app, job["id"]) == 0
    assert "waiting for 1 running job" in output


def test_a_handed_back_attempt_is_not_counted_against_the_attempt_limit(app):
    with app.app_context():
        service = app.extensions["job_service"]
        service.attempts.config = app.extensions["config"].with_overrides(max_attempts=2)
        job, _ = service.submit("alice", "echo", {}, None)
        service.attempts.hand_back(service.attempts.claim(job.id))
        second = service.attempts.claim(job.id)
        retried = service.attempts.retry_or_fail(second, "transient_error", "flaky")
        third = service.attempts.claim(job.id) if retried else None
        given_up = service.attempts.retry_or_fail(third, "transient_error", "flaky") if third else None
        db.session.expire_all()
        row = db.session.get(Job, job.id)

    # Attempt 2 is the first counted one, so it may still retry; attempt 3 is the second and last.
    assert (second.attempt, retried, third.attempt, given_up) == (2, True, 3, False)
    assert (row.status, row.attempts, row.handed_back) == ("failed", 3, 1)
    assert "gave up after 2 attempts" in row.error_message


def test_a_handed_back_attempt_cannot_write_again_even_after_the_job_is_claimed_anew(app):
    with app.app_context():
        attempts = app.extensions["job_service"].attempts
        job, _ = app.extensions["job_service"].submit("alice", "echo", {}, None)
        old = attempts.claim(job.id)
        assert attempts.hand_back(old)
        with pytest.raises(AttemptSuperseded):
            attempts.record_progress(old, 50, "echo", "stale while queued")
        new = attempts.claim(job.id)
        with pytest.raises(AttemptSuperseded):
            attempts.record_progress(old, 60, "echo", "stale while the next attempt runs")
        stale_success = attempts.succeed(old, {"payload": "stale"})
        db.session.expire_all()
        row = db.session.get(Job, job.id)

    assert new.attempt == old.attempt + 1
    assert stale_success is False
    assert (row.status, row.attempts, row.result) == ("running", 2, None)


def test_stopping_the_embedded_worker_hands_its_running_job_back(tmp_path, capfd):
    """What Ctrl-C in `make run` does: the same grace, then the same hand-back."""
    app = create_app(Config(database_url=f"sqlite:///{tmp_path / 'jobs.sqlite3'}", dev_api_key="dev-test-key",
                            worker_shutdown_grace_s=0.5))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    # Alembic's logging setup (fileConfig) disables the loggers that exist before it; `make run`
    # upgrades in a process of its own, so its server's loggers stay as configured.
    vitals_log = logging.getLogger("backend.vitals")
    vitals_log.disabled = False
    vitals_log.setLevel(logging.INFO)
    client = app.test_client()
    auth = {"Authorization": "Bearer dev-test-key"}
    worker = start_embedded_worker(app)
    stop_took_s = None
    try:
        job = submit(client, auth, "echo", LONG_JOB).get_json()
        wait_for_status(client, job["id"], auth, statuses={"running"}, timeout_s=10)
        stopped_at = time.monotonic()
        worker.stop()
        stop_took_s = time.monotonic() - stopped_at
    finally:
        if stop_took_s is None:
            worker.stop()

    details = client.get(f"/api/ai/jobs/{job['id']}", headers=auth).get_json()
    assert details["status"] == "queued"
    assert details["attempts"] == 1
    assert _handed_back(app, job["id"]) == 1
    logged = capfd.readouterr().err
    assert re.search(r"waiting for 1 running job, \d+ s left", logged)
    assert "handing back 1 unfinished job" in logged
    assert stop_took_s < 5


def test_an_agent_that_reaches_no_checkpoint_is_handed_back_by_the_stopping_worker(tmp_path):
    app = create_app(Config(database_url=f"sqlite:///{tmp_path / 'jobs.sqlite3'}", dev_api_key="dev-test-key",
                            worker_shutdown_grace_s=0.2))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    client = app.test_client()
    auth = {"Authorization": "Bearer dev-test-key"}
    worker = start_embedded_worker(app)
    # One step of 6 s: no progress report, hence no checkpoint, for 6 s.
    job = submit(client, auth, "echo", {"steps": 1, "delay_ms": 6000}).get_json()
    wait_for_status(client, job["id"], auth, statuses={"running"}, timeout_s=10)
    stopped_at = time.monotonic()
    worker.stop(timeout=100)
    stop_took_s = time.monotonic() - stopped_at

    details = client.get(f"/api/ai/jobs/{job['id']}", headers=auth).get_json()
    assert details["status"] == "queued"
    assert _handed_back(app, job["id"]) == 1
    assert any("before the agent reached a checkpoint" in (e["message"] or "") for e in _events(client, auth, job["id"]))
    assert stop_took_s < 5  # the grace and the 2 s wait for a checkpoint, not the agent's 6 s
