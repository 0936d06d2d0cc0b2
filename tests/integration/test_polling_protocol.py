"""The polling protocol: conditional polls, hints, batches, long polls, estimates and CORS."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backend import create_app
from tests.conftest import make_key
from tests.helpers import submit, wait_for_status

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _status(client, job_id, headers, **extra):
    return client.get(f"/api/ai/jobs/{job_id}/status", headers={**headers, **extra})


def test_an_unchanged_status_is_answered_304_with_no_body(client, auth):
    job = submit(client, auth, "echo", {}).get_json()
    first = _status(client, job["id"], auth)
    tag = first.headers["ETag"]

    again = _status(client, job["id"], auth, **{"If-None-Match": tag})

    assert tag.startswith('W/"v1') and tag.endswith('"')  # weak: docs/polling.md says why
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == tag
    assert int(again.headers["Retry-After"]) >= 1
    assert again.headers["Cache-Control"] == "no-cache"


def test_a_changed_job_gets_a_new_tag_and_a_full_body(client, auth):
    job = submit(client, auth, "echo", {}).get_json()
    tag = _status(client, job["id"], auth).headers["ETag"]
    client.post(f"/api/ai/jobs/{job['id']}/cancel", headers=auth)

    response = _status(client, job["id"], auth, **{"If-None-Match": tag})

    assert response.status_code == 200
    assert response.headers["ETag"] != tag
    assert response.get_json()["status"] == "cancelled"
    # A terminal job needs no further polling: no hint at all.
    assert "Retry-After" not in response.headers
    assert response.get_json()["poll_after_ms"] is None


def test_a_queued_job_reports_its_place_in_the_queue(client, auth):
    ids = [submit(client, auth, "echo", {}).get_json()["id"] for _ in range(3)]

    positions = [_status(client, i, auth).get_json()["queue_position"] for i in ids]

    assert positions == [0, 1, 2]
    assert _status(client, ids[0], auth).get_json()["poll_after_ms"] == 2000


def test_the_batch_returns_only_changed_jobs_and_names_the_rest(app, client, auth):
    mine = [submit(client, auth, "echo", {}).get_json() for _ in range(3)]
    bob = {"Authorization": f"Bearer {make_key(app, 'bob')}"}
    theirs = submit(client, bob, "echo", {}).get_json()
    unknown = "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW"
    ids = [j["id"] for j in mine] + [theirs["id"], unknown]

    response = client.post(
        "/api/ai/jobs/statuses",
        json={"ids": ids, "versions": {mine[0]["id"]: 1, mine[1]["id"]: 0}},
        headers=auth,
    )

    body = response.get_json()
    assert response.status_code == 200
    assert [j["id"] for j in body["jobs"]] == [mine[1]["id"], mine[2]["id"]]
    assert body["unchanged"] == [mine[0]["id"]]
    assert body["not_found"] == [theirs["id"], unknown]
    assert body["poll_after_ms"] == 2000


def test_a_batch_of_more_than_100_ids_is_unprocessable(client, auth):
    ids = [f"job_01JDQ7Z8K3M4N5P6Q7R8S9T{n:03d}".replace("0", "1")[:30] for n in range(101)]

    response = client.post("/api/ai/jobs/statuses", json={"ids": ids}, headers=auth)

    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert "ids" in response.get_json()["detail"]


@pytest.mark.parametrize(
    "body",
    [{"ids": []}, {"ids": ["nope"]}, {"ids": "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW"}, {},
     {"ids": ["job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW"], "versions": {"job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW": "x"}}],
)
def test_a_malformed_batch_is_unprocessable(client, auth, body):
    response = client.post("/api/ai/jobs/statuses", json=body, headers=auth)

    assert response.status_code == 422


def test_a_long_poll_returns_304_after_the_wait_when_nothing_changes(client, auth):
    job = submit(client, auth, "echo", {}).get_json()
    tag = _status(client, job["id"], auth).headers["ETag"]

    started = time.monotonic()
    response = client.get(f"/api/ai/jobs/{job['id']}/status?wait=1", headers={**auth, "If-None-Match": tag})

    assert response.status_code == 304
    assert time.monotonic() - started >= 0.9


def _wait_until_parked(app, job_id: str, count: int = 1) -> None:
    """Until ``count`` long polls are registered for a wake-up on the job (no sleep-and-hope)."""
    waiters = app.extensions["job_service"].notifier.waiters
    deadline = time.monotonic() + 10
    while waiters.waiting(job_id) < count:
        assert time.monotonic() < deadline, f"no long poll parked on {job_id} within 10 s"
        time.sleep(0.01)


def test_a_long_poll_wakes_as_soon_as_another_process_changes_the_job(app, config, client, auth):
    """The waiting request is here; the change is made by a `dramatiq backend.worker` process."""
    job = submit(client, auth, "echo", {"steps": 1}).get_json()
    tag = _status(client, job["id"], auth).headers["ETag"]
    answers = {}

    def long_poll():
        started = time.monotonic()
        answers["response"] = client.get(
            f"/api/ai/jobs/{job['id']}/status?wait=25", headers={**auth, "If-None-Match": tag}
        )
        answers["elapsed_s"] = time.monotonic() - started

    poller = threading.Thread(target=long_poll)
    poller.start()
    _wait_until_parked(app, job["id"])  # the request is parked before the worker exists
    env = dict(os.environ, DATABASE_URL=config.database_url, REDIS_URL=config.redis_url)
    worker = subprocess.Popen([sys.executable, "-m", "dramatiq", "backend.worker", "-p", "1", "-t", "1"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poller.join(timeout=30)
    finally:
        worker.terminate()
        worker.wait(timeout=20)

    assert answers["response"].status_code == 200
    assert answers["response"].get_json()["version"] > 1
    assert answers["elapsed_s"] < 20  # woken by the change, not by the 25 s timeout


def test_a_batch_long_poll_returns_when_any_job_changes(app, client, auth):
    jobs = [submit(client, auth, "echo", {}).get_json() for _ in range(2)]
    versions = {j["id"]: j["version"] for j in jobs}
    answers = {}

    def long_poll():
        answers["response"] = client.post(
            "/api/ai/jobs/statuses?wait=20", json={"ids": list(versions), "versions": versions}, headers=auth
        )

    poller = threading.Thread(target=long_poll)
    poller.start()
    _wait_until_parked(app, jobs[1]["id"])
    started = time.monotonic()
    client.post(f"/api/ai/jobs/{jobs[1]['id']}/cancel", headers=auth)
    poller.join(timeout=25)

    body = answers["response"].get_json()
    assert [j["id"] for j in body["jobs"]] == [jobs[1]["id"]]
    assert body["unchanged"] == [jobs[0]["id"]]
    assert time.monotonic() - started < 10


def test_a_wait_beyond_30_seconds_is_refused(client, auth):
    job = submit(client, auth, "echo", {}).get_json()

    response = client.get(f"/api/ai/jobs/{job['id']}/status?wait=31", headers=auth)

    assert response.status_code == 422


def test_a_running_job_carries_an_estimate_of_its_completion(client, auth, worker):
    job = submit(client, auth, "echo", {"steps": 20, "delay_ms": 100}).get_json()
    deadline = time.monotonic() + 10
    estimate = None
    while estimate is None and time.monotonic() < deadline:
        body = _status(client, job["id"], auth).get_json()
        if body["status"] == "running" and body["progress"]["percent"] >= 10:
            estimate = body["estimated_completion_at"]
        time.sleep(0.05)

    assert estimate is not None and estimate > body["updated_at"]
    final = wait_for_status(client, job["id"], auth)
    assert final["estimated_completion_at"] is None


def test_cors_is_closed_unless_origins_are_configured(client, auth):
    response = client.options("/api/ai/jobs", headers={"Origin": "https://pages.example",
                                                       "Access-Control-Request-Method": "POST"})

    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_configured_origin_gets_preflights_and_exposed_headers(config):
    app = create_app(config.with_overrides(cors_allowed_origins=("https://pages.example",)))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {make_key(app, 'carol')}"}

    preflight = client.options("/api/ai/jobs/statuses", headers={
        "Origin": "https://pages.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, if-none-match"})
    other = client.options("/api/ai/jobs", headers={"Origin": "https://evil.example",
                                                    "Access-Control-Request-Method": "POST"})
    job = submit(client, {**auth, "Origin": "https://pages.example"}, "echo", {})

    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://pages.example"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Origin" not in other.headers
    exposed = job.headers["Access-Control-Expose-Headers"]
    assert "ETag" in exposed and "Retry-After" in exposed and "Location" in exposed


def test_the_protocol_is_in_the_openapi_document(client):
    spec = client.get("/api/openapi.json").get_json()

    status_op = spec["paths"]["/api/ai/jobs/{job_id}/status"]["get"]
    assert "304" in status_op["responses"]
    assert any(p["name"] == "If-None-Match" for p in status_op["parameters"])
    assert any(p["name"] == "wait" for p in status_op["parameters"])
    assert "/api/ai/jobs/statuses" in spec["paths"]


def test_a_configured_origin_may_import_the_client_modules(config):
    app = create_app(config.with_overrides(cors_allowed_origins=("https://pages.example",)))

    module = app.test_client().get("/client/src/index.js", headers={"Origin": "https://pages.example"})

    assert module.status_code == 200
    assert module.headers["Access-Control-Allow-Origin"] == "https://pages.example"
