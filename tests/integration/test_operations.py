"""Operations on the real stack: /metrics, request ids, JSON logs, ops-scoped keys, health details."""
from __future__ import annotations

import io
import json
import logging
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend import keys
from backend.logs import configure_logging
from tests.helpers import submit, wait_for_status

pytestmark = pytest.mark.integration


def scrape(client) -> dict[tuple, float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def ops_key(app, owner="operator") -> str:
    with app.app_context():
        return keys.create_key(owner, scope="ops").key


def test_polls_are_counted_by_outcome_and_requests_by_route_template(client, auth):
    job_id = submit(client, auth).get_json()["id"]
    before = scrape(client)
    tag = client.get(f"/api/ai/jobs/{job_id}/status", headers=auth).headers["ETag"]
    assert client.get(f"/api/ai/jobs/{job_id}/status", headers={**auth, "If-None-Match": tag}).status_code == 304
    assert client.get("/api/ai/jobs/job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW/status", headers=auth).status_code == 404
    after = scrape(client)

    assert value(after, "job_polls_total", outcome="200") - value(before, "job_polls_total", outcome="200") == 1
    assert value(after, "job_polls_total", outcome="304") - value(before, "job_polls_total", outcome="304") == 1
    assert value(after, "job_polls_total", outcome="4xx") - value(before, "job_polls_total", outcome="4xx") == 1
    route = "/api/ai/jobs/<job_id>/status"
    for status_class, expected in (("2xx", 1), ("3xx", 1), ("4xx", 1)):
        key = {"route": route, "method": "GET", "status_class": status_class}
        assert value(after, "http_requests_total", **key) - value(before, "http_requests_total", **key) == expected
    # The job id never becomes a label.
    assert not any(job_id in str(labels) for _, labels in after)
    assert value(after, "job_poll_duration_seconds_count") - value(before, "job_poll_duration_seconds_count") == 3
    assert value(after, "jobs_submitted_total", agent="echo") >= 1
    assert value(after, "jobs", status="queued") >= 1
    assert value(after, "health_check_up", check="database") == 1


def test_a_sane_request_id_comes_back_and_any_other_is_replaced(client, auth):
    kept = client.get("/api/ai/agents", headers={**auth, "X-Request-ID": "trace-42.a:b_c"})
    replaced = client.get("/api/ai/agents", headers={**auth, "X-Request-ID": "bad id\twith spaces"})
    generated = client.get("/health/live")

    assert kept.headers["X-Request-ID"] == "trace-42.a:b_c"
    assert replaced.headers["X-Request-ID"] not in ("bad id\twith spaces", "")
    assert len(generated.headers["X-Request-ID"]) == 32
    assert client.get("/health/live").headers["X-Request-ID"] != generated.headers["X-Request-ID"]


@pytest.fixture
def json_log():
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    yield stream
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "ai-jobs"]:
        root.removeHandler(handler)


def test_one_grep_for_the_request_id_follows_a_job_from_its_post_to_its_end(client, auth, api_key, worker, json_log):
    response = client.post(
        "/api/ai/jobs", json={"agent": "echo", "input": {"payload": "zanzibar secret prompt"}},
        headers={**auth, "X-Request-ID": "req-follow-me-1"},
    )
    job_id = response.get_json()["id"]
    wait_for_status(client, job_id, auth)
    time.sleep(0.2)  # the worker's last line is written after the job's final commit

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    followed = [line for line in lines if line.get("request_id") == "req-follow-me-1"]
    messages = [line["message"] for line in followed]
    assert "job accepted" in messages
    assert any(m.startswith("message run_job received") for m in messages), messages
    assert any(m.startswith("message run_job processed") for m in messages), messages
    assert all(line["job_id"] == job_id for line in followed)
    assert {"time", "level", "logger", "message"} <= set(followed[0])
    logged = json_log.getvalue()
    assert "zanzibar" not in logged
    assert api_key.split("_", 2)[2] not in logged


def test_details_need_an_ops_key_a_job_key_gets_403(client, auth, app):
    assert client.get("/health/details").status_code == 401
    refused = client.get("/health/details", headers=auth)
    assert refused.status_code == 403
    assert refused.content_type == "application/problem+json"
    assert "--scope ops" in refused.get_json()["detail"]
    assert client.get("/health/details", headers={"Authorization": "Bearer jobs_nope_nope"}).status_code == 401

    allowed = client.get("/health/details", headers={"Authorization": f"Bearer {ops_key(app)}"})
    assert allowed.status_code == 200
    body = allowed.get_json()
    assert set(body["checks"]) == {"database", "broker", "workers"}
    assert all("latency_ms" in check for check in body["checks"].values())
    assert set(body["queue"]) == {"depth", "running", "oldest_queued_age_s"}
    assert {"success_rate", "p50_ms", "p95_ms", "recoveries"} <= set(body["window"])
    assert body["window_s"] == 900
    assert allowed.headers["Cache-Control"] == "no-store"


def test_an_ops_key_is_created_from_the_command_line(app, client):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["keys", "create", "--owner", "pager", "--scope", "ops"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert client.get("/health/details", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    bad = runner.invoke(args=["keys", "create", "--owner", "pager", "--scope", "root"])
    assert bad.exit_code != 0
    assert "root" in bad.output


def test_readiness_reports_each_check_with_its_latency_and_live_workers(client, app, worker):
    deadline = time.monotonic() + 10
    while True:
        body = client.get("/health/ready").get_json()
        if body["checks"]["workers"]["alive"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    assert body["status"] == "ok"
    assert body["checks"]["workers"] == {
        "ok": True, "alive": 1, "decides_readiness": False, "latency_ms": body["checks"]["workers"]["latency_ms"],
    }
    assert all(check["latency_ms"] >= 0 for check in body["checks"].values())
    details = client.get("/health/details", headers={"Authorization": f"Bearer {ops_key(app)}"}).get_json()
    assert details["workers"]["alive"] == 1
    assert details["workers"]["processes"][0]["beat_age_s"] < 10


def test_a_worker_that_shuts_down_is_no_longer_counted_alive(app, client):
    import dramatiq

    broker = app.extensions["job_queue"].broker
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    deadline = time.monotonic() + 10
    while client.get("/health/ready").get_json()["checks"]["workers"]["alive"] < 1:
        assert time.monotonic() < deadline, "the worker never beat"
        time.sleep(0.1)
    worker.stop()

    ready = client.get("/health/ready")
    assert ready.get_json()["checks"]["workers"]["ok"] is False
    assert ready.get_json()["checks"]["workers"]["alive"] == 0
    # No worker is not "not ready": the web process still answers polls.
    assert ready.status_code == 200


def test_gunicorn_logs_json_lines_with_the_request_id_when_log_format_is_json(app, config, tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import urllib.error
    import urllib.request
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, DATABASE_URL=config.database_url, REDIS_URL=config.redis_url, LOG_FORMAT="json",
               BIND=f"127.0.0.1:{port}", WEB_WORKERS="1", WEB_THREADS="4",
               PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:backend.gunicorn_conf", "wsgi:app"],
            cwd=Path(__file__).resolve().parents[2], env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, log_path.read_text()
                try:
                    request = urllib.request.Request(f"http://127.0.0.1:{port}/health/live",
                                                     headers={"X-Request-ID": "gunicorn-json-1"})
                    with urllib.request.urlopen(request, timeout=2):
                        break
                except (urllib.error.URLError, OSError):
                    assert time.monotonic() < deadline, log_path.read_text()
                    time.sleep(0.2)
            time.sleep(0.5)
        finally:
            server.terminate()
            server.wait(timeout=30)

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert any("rid=gunicorn-json-1" in line["message"] for line in access), access
    assert any(line["logger"] == "gunicorn.error" for line in lines)
