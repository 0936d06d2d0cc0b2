"""Operations in the embedded mode: no Redis, no Prometheus, and still /metrics, readiness with the
in-process worker, the ops page, and retention on SQLite."""
from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from backend import create_app, keys
from backend.config import Config
from backend.embedded import start_embedded_worker
from backend.extensions import db
from backend.jobs.retention import purge_finished
from tests.helpers import submit, wait_for_status

AUTH = {"Authorization": "Bearer dev-test-key"}


@pytest.fixture
def embedded_app(tmp_path):
    app = create_app(Config(database_url=f"sqlite:///{tmp_path / 'jobs.sqlite3'}", dev_api_key="dev-test-key"))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    worker = start_embedded_worker(app)
    yield app
    worker.stop()


def test_metrics_and_readiness_work_without_redis_or_prometheus(embedded_app):
    client = embedded_app.test_client()
    job = submit(client, AUTH, "echo", {}).get_json()
    wait_for_status(client, job["id"], AUTH)

    response = client.get("/metrics")
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {"job_polls", "jobs_finished", "job_run_seconds", "workers_alive", "process_cpu_seconds"} <= names
    ready = client.get("/health/ready").get_json()
    assert ready["checks"]["workers"]["alive"] == 1  # the in-process worker beats like any other
    assert ready["checks"]["broker"]["ok"] is True


def test_the_ops_page_and_its_module_are_served(embedded_app):
    client = embedded_app.test_client()
    page = client.get("/ops")
    assert page.status_code == 200
    assert b'src="/ops/ops.js"' in page.data
    for asset in ("ops.js", "sparkline.js", "ops.css"):
        assert client.get(f"/ops/{asset}").status_code == 200
    assert client.get("/ops/nope.js").status_code == 404


def test_an_ops_key_reads_the_details_on_sqlite(embedded_app):
    client = embedded_app.test_client()
    with embedded_app.app_context():
        key = keys.create_key("operator", scope="ops").key
    # The development key is a job key.
    assert client.get("/health/details", headers=AUTH).status_code == 403
    details = client.get("/health/details", headers={"Authorization": f"Bearer {key}"}).get_json()
    assert details["slow_queries"]["running"] == []  # pg_stat_activity is PostgreSQL's
    assert details["workers"]["alive"] == 1


def test_a_purge_on_sqlite_takes_the_history_with_the_job(embedded_app):
    client = embedded_app.test_client()
    job = submit(client, AUTH, "echo", {}).get_json()
    wait_for_status(client, job["id"], AUTH)
    with embedded_app.app_context():
        db.session.execute(text("UPDATE jobs SET finished_at = :at"), {"at": "2000-01-01 00:00:00"})
        db.session.commit()
        assert purge_finished(timedelta(days=30)).deleted == 1
        assert db.session.execute(text("SELECT count(*) FROM job_events")).scalar() == 0

    assert client.get(f"/api/ai/jobs/{job['id']}", headers=AUTH).status_code == 404


def test_the_oldest_queued_age_is_read_on_sqlite_too(tmp_path):
    app = create_app(Config(database_url=f"sqlite:///{tmp_path / 'idle.sqlite3'}", dev_api_key="dev-test-key"))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        key = keys.create_key("operator", scope="ops").key
    client = app.test_client()
    submit(client, AUTH, "echo", {})  # no worker runs here: it stays queued

    details = client.get("/health/details", headers={"Authorization": f"Bearer {key}"}).get_json()

    assert details["queue"]["depth"] == 1
    assert 0 <= details["queue"]["oldest_queued_age_s"] < 60
    assert details["workers"]["alive"] == 0
