"""Retention on real PostgreSQL: old finished jobs and their history go, in bounded batches."""
from __future__ import annotations

import statistics
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from backend.extensions import db
from backend.jobs.retention import RetentionPass, purge_finished
from backend.models import Job, JobEvent
from tests.conftest import make_key
from tests.helpers import submit

pytestmark = pytest.mark.integration

INSERT_FINISHED_JOBS = """
INSERT INTO jobs (id, owner, agent, input, request_hash, status, progress_percent, attempts, version,
                  created_at, started_at, finished_at, updated_at)
SELECT 'job_' || lpad(upper(to_hex(n + :offset)), 26, '0'), 'bulk', 'echo', '{}'::json, 'x',
       (ARRAY['succeeded', 'failed', 'cancelled'])[1 + n % 3], 100, 1, 2,
       now() - make_interval(days => :age_days) - interval '1 minute',
       now() - make_interval(days => :age_days) - interval '30 seconds',
       now() - make_interval(days => :age_days), now() - make_interval(days => :age_days)
FROM generate_series(1, :count) AS n
"""
INSERT_THEIR_EVENTS = """
INSERT INTO job_events (job_id, seq, at, status, percent)
SELECT id, seq, finished_at, status, 100 FROM jobs, generate_series(1, 2) AS seq WHERE owner = 'bulk'
"""


def add_finished_jobs(count: int, *, age_days: float, offset: int = 0) -> None:
    db.session.execute(text(INSERT_FINISHED_JOBS), {"count": count, "age_days": age_days, "offset": offset})
    db.session.commit()


def add_events_of_bulk_jobs() -> None:
    db.session.execute(text(INSERT_THEIR_EVENTS))
    db.session.commit()


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_a_purge_deletes_old_finished_jobs_with_their_history_and_nothing_else(app, client, auth):
    live_id = submit(client, auth).get_json()["id"]  # queued: never purged, however old
    with app.app_context():
        add_finished_jobs(30, age_days=10)
        add_finished_jobs(5, age_days=3, offset=1000)
        add_events_of_bulk_jobs()
        db.session.execute(text("UPDATE jobs SET created_at = now() - interval '60 days' WHERE id = :id"),
                           {"id": live_id})
        db.session.commit()
        dry = purge_finished(timedelta(days=7), dry_run=True)
        assert (dry.deleted, count(Job, Job.owner == "bulk")) == (30, 35)

        result = purge_finished(timedelta(days=7), batch_size=7, pause_s=0)

        assert (result.deleted, result.batches, result.complete) == (30, 5, True)
        assert count(Job, Job.owner == "bulk") == 5
        assert count(JobEvent, JobEvent.job_id != live_id) == 10  # the 5 younger jobs' events only
        assert db.session.get(Job, live_id) is not None


def test_a_deleted_job_answers_404_like_one_that_never_existed(app, client, auth):
    job_id = submit(client, auth).get_json()["id"]
    client.post(f"/api/ai/jobs/{job_id}/cancel", headers=auth)
    tag = client.get(f"/api/ai/jobs/{job_id}/status", headers=auth).headers["ETag"]
    with app.app_context():
        db.session.execute(text("UPDATE jobs SET finished_at = now() - interval '31 days' WHERE id = :id"),
                           {"id": job_id})
        db.session.commit()
        assert purge_finished(timedelta(days=30)).deleted == 1

    conditional = client.get(f"/api/ai/jobs/{job_id}/status", headers={**auth, "If-None-Match": tag})
    assert conditional.status_code == 404  # not a 304 from the status it had
    for path in (f"/api/ai/jobs/{job_id}", f"/api/ai/jobs/{job_id}/status", f"/api/ai/jobs/{job_id}/events"):
        response = client.get(path, headers=auth)
        assert response.status_code == 404
        assert response.content_type == "application/problem+json"


def test_the_sweep_pass_is_bounded_and_runs_at_most_once_per_interval(app):
    now_s = [0.0]
    sweep = RetentionPass(retention_days=7, batch_size=10, every_s=60, max_batches=2, clock=lambda: now_s[0])
    with app.app_context():
        add_finished_jobs(45, age_days=8)
        assert sweep.maybe_run() == 20  # two batches of ten, the rest waits for the next pass
        assert sweep.maybe_run() == 0  # not due yet
        now_s[0] = 61.0
        assert sweep.maybe_run() == 20
        now_s[0] = 122.0
        assert sweep.maybe_run() == 5
        assert count(Job, Job.owner == "bulk") == 0


def test_the_purge_command_has_a_dry_run(app):
    with app.app_context():
        add_finished_jobs(12, age_days=9)
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["jobs", "purge", "--older-than", "7d", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "12 finished jobs" in dry.output and "would be deleted" in dry.output
    with app.app_context():
        assert count(Job, Job.owner == "bulk") == 12

    done = runner.invoke(args=["jobs", "purge", "--older-than", "7d", "--batch-size", "5"])
    assert done.exit_code == 0, done.output
    assert "Deleted 12 finished jobs" in done.output and "in 3 batches" in done.output
    bad = runner.invoke(args=["jobs", "purge", "--older-than", "a week"])
    assert bad.exit_code == 2 and "30s, 15m, 12h or 90d" in bad.output


def test_the_purge_finds_its_jobs_through_the_finished_at_index(app):
    with app.app_context():
        add_finished_jobs(20_000, age_days=40)
        db.session.execute(text("ANALYZE jobs"))
        plan = "\n".join(row[0] for row in db.session.execute(text(
            "EXPLAIN SELECT id FROM jobs WHERE finished_at < now() - interval '30 days' "
            "AND status IN ('succeeded', 'failed', 'cancelled') ORDER BY finished_at LIMIT 500"
        )))
        db.session.rollback()

    assert "ix_jobs_finished_at" in plan, plan


def p99_ms(samples_s: list[float]) -> float:
    ordered = sorted(samples_s)
    return ordered[int(len(ordered) * 0.99) - 1] * 1000


@pytest.fixture
def unlimited_app(app, config):
    """The app without rate limits: the test polls thousands of times a minute on purpose."""
    from backend import create_app

    unlimited = "1000000/minute"
    return create_app(config.with_overrides(rate_limit_poll=unlimited, rate_limit_default=unlimited))


def test_purging_100000_finished_jobs_does_not_hold_up_polls(unlimited_app):
    """Poll p99 during a purge pass stays within 2x the idle p99 (the issue's bound)."""
    app = unlimited_app
    client = app.test_client()
    auth = {"Authorization": f"Bearer {make_key(app, 'poller')}"}
    job_id = submit(client, auth).get_json()["id"]
    with app.app_context():
        add_finished_jobs(100_000, age_days=40)
        add_events_of_bulk_jobs()
        db.session.execute(text("ANALYZE jobs; ANALYZE job_events"))
        db.session.commit()

    def poll() -> float:
        started = time.perf_counter()
        assert client.get(f"/api/ai/jobs/{job_id}/status", headers=auth).status_code == 200
        return time.perf_counter() - started

    for _ in range(50):
        poll()  # warm up the pool and the code paths
    # Idle polls before and after the purge: the machine's drift (other work on it) hits both sides.
    idle = [poll() for _ in range(300)]

    finished = threading.Event()
    outcome = {}

    def purge() -> None:
        with app.app_context():
            outcome["result"] = purge_finished(timedelta(days=30), batch_size=500)
        finished.set()

    purger = threading.Thread(target=purge)
    purger.start()
    during = []
    while not finished.is_set():
        during.append(poll())
    purger.join()
    idle += [poll() for _ in range(300)]

    result = outcome["result"]
    assert result.deleted == 100_000 and result.complete
    with app.app_context():
        assert count(Job, Job.owner == "bulk") == 0
        assert count(JobEvent) == 1  # the polled job's own "accepted" event
    assert len(during) >= 200, f"only {len(during)} polls ran during the purge"
    idle_p99, during_p99 = p99_ms(idle), p99_ms(during)
    print(f"\npoll p99 idle {idle_p99:.2f} ms, during purge {during_p99:.2f} ms; median "
          f"{statistics.median(idle) * 1000:.2f} / {statistics.median(during) * 1000:.2f} ms "
          f"({len(during)} polls during {result.batches} batches)")
    assert during_p99 <= 2 * idle_p99, (idle_p99, during_p99)
