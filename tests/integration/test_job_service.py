"""The job service's rules on real PostgreSQL: compare-and-set transitions and attempt fencing."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from backend import runner
from backend.jobs.errors import JobAlreadyFinished, JobNotFound
from backend.jobs.service import AttemptSuperseded, JobService
from backend.models import Job, JobEvent, utcnow
from backend.extensions import db
from sqlalchemy import update

pytestmark = pytest.mark.integration


@pytest.fixture
def service(app) -> JobService:
    with app.app_context():
        yield app.extensions["job_service"]


def _job(service, **input_):
    job, created = service.submit("alice", "echo", input_, None)
    assert created
    return job.id


def _status(job_id: str) -> str:
    db.session.expire_all()
    return db.session.get(Job, job_id).status


def test_a_job_can_be_claimed_only_once(service):
    job_id = _job(service)

    first = service.attempts.claim(job_id)
    second = service.attempts.claim(job_id)

    assert first is not None and first.attempt == 1
    assert second is None
    assert _status(job_id) == "running"


def test_concurrent_claims_from_duplicate_deliveries_let_exactly_one_attempt_run(app, service):
    job_id = _job(service)
    claims = []

    def claim():
        with app.app_context():
            claims.append(app.extensions["job_service"].attempts.claim(job_id))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len([c for c in claims if c is not None]) == 1


def test_a_stale_worker_cannot_move_a_finished_job_back(service):
    job_id = _job(service)
    claim = service.attempts.claim(job_id)
    assert service.attempts.succeed(claim, {"ok": True})

    assert service.attempts.fail(claim, "late", "a stale worker") is False
    assert service.attempts.mark_cancelled(claim) is False
    with pytest.raises(AttemptSuperseded):
        service.attempts.record_progress(claim, 50, "late", "")
    assert _status(job_id) == "succeeded"


def test_a_superseded_attempt_cannot_write_over_the_next_one(service):
    job_id = _job(service)
    old = service.attempts.claim(job_id)
    assert service.attempts.retry_or_fail(old, "transient_error", "blip")
    new = service.attempts.claim(job_id)

    assert new.attempt == 2
    with pytest.raises(AttemptSuperseded):
        service.attempts.record_progress(old, 90, "late", "")
    assert service.attempts.succeed(old, {"from": "old"}) is False
    assert service.attempts.succeed(new, {"from": "new"}) is True
    db.session.expire_all()
    assert db.session.get(Job, job_id).result == {"from": "new"}


def test_every_change_bumps_the_version_and_appends_one_event(service):
    job_id = _job(service)
    claim = service.attempts.claim(job_id)
    service.attempts.record_progress(claim, 40, "plan", "halfway")
    service.attempts.succeed(claim, {})

    db.session.expire_all()
    job = db.session.get(Job, job_id)
    seqs = [e.seq for e in db.session.query(JobEvent).filter_by(job_id=job_id).order_by(JobEvent.seq)]
    assert job.version == 4
    assert seqs == [1, 2, 3, 4]


def test_a_cancel_request_is_seen_by_the_running_attempt(service):
    job_id = _job(service)
    claim = service.attempts.claim(job_id)

    assert service.attempts.record_progress(claim, 10, "work", "") is False
    service.cancel("alice", job_id)

    assert service.attempts.cancel_requested(claim) is True
    assert service.attempts.mark_cancelled(claim) is True
    assert _status(job_id) == "cancelled"


def test_a_cancelled_queued_job_is_never_claimed(service):
    job_id = _job(service)
    service.cancel("alice", job_id)

    assert service.attempts.claim(job_id) is None
    assert _status(job_id) == "cancelled"


def test_another_owner_cannot_cancel_or_read_a_job(service):
    job_id = _job(service)

    with pytest.raises(JobNotFound):
        service.cancel("mallory", job_id)
    with pytest.raises(JobNotFound):
        service.events("mallory", job_id)
    assert _status(job_id) == "queued"


def test_retry_delays_grow_exponentially_within_the_cap(service):
    delays = [service.attempts.retry_delay_ms(attempt) for attempt in (1, 2, 3, 4, 5, 6)]
    base, cap = service.config.retry_backoff_base_ms, service.config.retry_backoff_max_ms

    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(cap, base * 2 ** (attempt - 1))
        assert ceiling // 2 <= delay <= ceiling


def test_a_transient_failure_after_a_cancel_request_ends_the_job_cancelled(service):
    job_id = _job(service)
    claim = service.attempts.claim(job_id)
    service.cancel("alice", job_id)

    assert service.attempts.retry_or_fail(claim, "transient_error", "blip") is False
    assert _status(job_id) == "cancelled"


def test_a_new_attempt_starts_without_the_previous_attempts_error(service):
    job_id = _job(service)
    service.attempts.retry_or_fail(service.attempts.claim(job_id), "transient_error", "blip")
    db.session.expire_all()
    assert db.session.get(Job, job_id).error_code == "transient_error"  # visible while waiting

    service.attempts.claim(job_id)

    db.session.expire_all()
    assert db.session.get(Job, job_id).error_code is None


def test_a_cancel_that_races_a_requeue_still_ends_the_job_cancelled(app, service):
    job_id = _job(service)
    claim = service.attempts.claim(job_id)
    service.cancel("alice", job_id)  # lands while the attempt is running
    # As if the sweep had read the job before the cancel and requeued it after: only a row with no
    # cancel request may be requeued, so the requeue loses and the next sweep pass cancels it.
    db.session.execute(update(Job).where(Job.id == job_id).values(status="queued"))
    db.session.commit()

    assert service.attempts.claim(job_id) is None
    assert service.sweep.cancel_requested_queued() == 1
    assert _status(job_id) == "cancelled"
    assert claim.attempt == 1


# ---- a stalled worker (SIGSTOP, a long GC pause, a partition) thawed after its job moved on ------


def _stall_past_the_heartbeat_timeout(job_id: str) -> None:
    db.session.execute(
        update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=60))
    )
    db.session.commit()


def test_a_worker_thawed_after_its_job_was_requeued_drops_its_outcome_and_the_job_runs_again(service):
    job_id = _job(service, steps=2, delay_ms=0)
    frozen = service.attempts.claim(job_id)
    _stall_past_the_heartbeat_timeout(job_id)
    assert service.sweep.reap_stale_running()["requeued"] == 1

    # Thawed: its agent reports progress, which finds the job no longer its own.
    with pytest.raises(AttemptSuperseded):
        runner._run_claimed(service.attempts, service.agents["echo"], frozen)

    assert _status(job_id) == "queued"
    again = service.attempts.claim(job_id)
    runner._run_claimed(service.attempts, service.agents["echo"], again)
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert (job.status, job.attempts, job.error_code) == ("succeeded", 2, None)


def test_one_heartbeat_refreshes_every_running_attempt_but_not_a_superseded_one(service):
    live = [service.attempts.claim(_job(service)) for _ in range(3)]
    frozen = service.attempts.claim(_job(service))
    _stall_past_the_heartbeat_timeout(frozen.job_id)
    service.sweep.reap_stale_running()  # the frozen attempt's job is queued again
    for claim in live:
        _stall_past_the_heartbeat_timeout(claim.job_id)
    started = utcnow()

    assert service.attempts.heartbeat([*live, frozen]) == 3
    db.session.expire_all()
    assert all(db.session.get(Job, claim.job_id).heartbeat_at >= started for claim in live)
    assert db.session.get(Job, frozen.job_id).heartbeat_at < started
    assert _status(frozen.job_id) == "queued"


def test_a_superseded_attempt_cannot_fail_or_cancel_a_requeued_job(service):
    job_id = _job(service)
    frozen = service.attempts.claim(job_id)
    _stall_past_the_heartbeat_timeout(job_id)
    service.sweep.reap_stale_running()

    assert service.attempts.fail(frozen, "agent_crashed", "thawed") is False
    assert service.attempts.mark_cancelled(frozen) is False
    assert service.attempts.retry_or_fail(frozen, "transient_error", "thawed") is False
    assert service.attempts.heartbeat([frozen]) == 0
    with pytest.raises(AttemptSuperseded):
        service.attempts.cancel_requested(frozen)
    assert _status(job_id) == "queued"


# ---- cancel is idempotent --------------------------------------------------------------------


def test_cancelling_a_cancelled_job_again_answers_with_the_job(service):
    job_id = _job(service)
    first = service.cancel("alice", job_id)
    version = first.version

    again = service.cancel("alice", job_id)

    assert again.status == "cancelled"
    assert again.version == version  # nothing was written the second time


def test_cancelling_a_running_job_twice_requests_it_once(service):
    job_id = _job(service)
    service.attempts.claim(job_id)
    first = service.cancel("alice", job_id)

    again = service.cancel("alice", job_id)

    assert (again.status, again.version) == ("running", first.version)
    assert again.cancel_requested_at is not None


@pytest.mark.parametrize("ending", ["succeed", "fail"])
def test_only_a_job_that_succeeded_or_failed_refuses_a_cancel(service, ending):
    job_id = _job(service)
    claim = service.attempts.claim(job_id)
    if ending == "succeed":
        service.attempts.succeed(claim, {})
    else:
        service.attempts.fail(claim, "boom", "it broke")

    with pytest.raises(JobAlreadyFinished):
        service.cancel("alice", job_id)
