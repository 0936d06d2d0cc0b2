"""A dependency that does not answer turns into a clear 503 (or a durable 202), never a 500."""
from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import select

from backend import create_app
from backend.extensions import db
from backend.models import Job
from tests.conftest import make_key
from tests.helpers import submit

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket closes


def test_with_the_database_unreachable_the_api_answers_503_problems(config):
    app = create_app(config.with_overrides(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/nowhere"))
    client = app.test_client()
    auth = {"Authorization": "Bearer jobs_0123456789abcdef_secret"}

    status = client.get("/api/ai/jobs/job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW/status", headers=auth)
    created = submit(client, auth, "echo", {})
    ready = client.get("/health/ready")

    for response in (status, created):
        assert response.status_code == 503
        assert response.content_type == "application/problem+json"
        assert response.get_json()["code"] == "database_unavailable"
        assert "Traceback" not in response.get_data(as_text=True)
        assert response.headers["Retry-After"] == "5"
    assert ready.status_code == 503
    assert ready.get_json()["failing"] == ["database"]
    assert client.get("/health/live").status_code == 200


def test_with_the_database_unreachable_metrics_are_still_served_and_say_so(config):
    from prometheus_client.parser import text_string_to_metric_families

    app = create_app(config.with_overrides(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/nowhere"))

    scraped = app.test_client().get("/metrics")

    assert scraped.status_code == 200
    checks = {sample.labels["check"]: sample.value
              for family in text_string_to_metric_families(scraped.get_data(as_text=True))
              for sample in family.samples if sample.name == "health_check_up"}
    assert checks["database"] == 0


def test_with_redis_unreachable_a_submit_is_still_accepted_and_marked_for_resending(config):
    app = create_app(config.with_overrides(redis_url=f"redis://127.0.0.1:{_closed_port()}/0"))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {make_key(app, 'alice')}"}

    first = submit(client, auth, "echo", {"payload": 1})
    second = submit(client, auth, "echo", {"payload": 2})  # skips the broker for a while: fast
    ready = client.get("/health/ready")

    assert (first.status_code, second.status_code) == (202, 202)
    assert ready.status_code == 503 and ready.get_json()["failing"] == ["broker"]
    with app.app_context():
        unsent = db.session.scalars(select(Job.enqueued_at).where(Job.id.in_(
            [first.get_json()["id"], second.get_json()["id"]]))).all()
    assert unsent == [None, None]  # the sweep sends them as soon as Redis answers


def test_with_redis_unreachable_job_writes_do_not_stall_on_publishing(config):
    app = create_app(config.with_overrides(redis_url=f"redis://127.0.0.1:{_closed_port()}/0"))
    notifier = app.extensions["job_service"].notifier

    started = time.monotonic()
    for _ in range(20):
        notifier.publish("job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW")

    assert time.monotonic() - started < 2.0  # one failed connect, then skipped for a while
