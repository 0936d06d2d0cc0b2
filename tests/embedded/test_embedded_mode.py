"""The embedded default: SQLite, Dramatiq's in-memory broker and an in-process worker.

These are the embedded mode's own tests, so SQLite and the in-memory broker are the real thing here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from backend import create_app
from backend.config import Config
from backend.embedded import start_embedded_worker
from tests.helpers import free_port, submit, wait_for_status

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def embedded_app(tmp_path):
    app = create_app(Config(database_url=f"sqlite:///{tmp_path / 'jobs.sqlite3'}", dev_api_key="dev-test-key"))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    worker = start_embedded_worker(app)
    yield app
    worker.stop()


def test_the_embedded_mode_runs_a_canvas_job_end_to_end(embedded_app):
    client = embedded_app.test_client()
    auth = {"Authorization": "Bearer dev-test-key"}

    job = submit(client, auth, "canvas", {"prompt": "flowchart: Start -> Validate -> Save -> End"}).get_json()
    final = wait_for_status(client, job["id"], auth)

    assert final["status"] == "succeeded"
    result = client.get(f"/api/ai/jobs/{job['id']}", headers=auth).get_json()["result"]
    assert [o["type"] for o in result["objects"]].count("arrow") == 3
    assert client.get("/health/ready").get_json()["checks"]["broker"]["ok"] is True


def test_the_embedded_mode_hands_its_development_key_only_to_its_demo_page(embedded_app, tmp_path):
    client = embedded_app.test_client()

    assert client.get("/demo-config.json").get_json()["api_key"] == "dev-test-key"
    production_like = create_app(
        Config(database_url=f"sqlite:///{tmp_path / 'other.sqlite3'}", redis_url="redis://127.0.0.1:1/0",
               dev_api_key="dev-test-key")
    )
    # Answered without a key (200, not 404, so that the demo page logs no console error).
    refused = production_like.test_client().get("/demo-config.json")
    assert refused.status_code == 200 and refused.get_json() == {"embedded": False}
    # Nor does the development key authenticate anywhere but in the embedded mode.
    response = production_like.test_client().get(
        "/api/ai/jobs", headers={"Authorization": "Bearer dev-test-key"}
    )
    assert response.status_code == 401


def test_the_embedded_timestamps_stay_timezone_aware(embedded_app):
    client = embedded_app.test_client()
    auth = {"Authorization": "Bearer dev-test-key"}

    job = submit(client, auth, "echo", {}).get_json()
    final = wait_for_status(client, job["id"], auth)

    for field in ("created_at", "started_at", "finished_at", "updated_at"):
        assert final[field].endswith("+00:00"), field


def _get(url: str, headers: dict | None = None) -> dict:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_make_run_serves_the_page_the_docs_and_a_job_with_nothing_but_python(tmp_path):
    """The `make run` command line: `flask db upgrade` then `flask serve`, on a fresh SQLite file."""
    port = free_port()
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}", REDIS_URL="",
               DEV_API_KEY="run-test-key", CANVAS_STAGE_DELAY_MS="20")
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    server = subprocess.Popen([*flask, "serve", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                _get(f"{base}/health/live")
                break
            except OSError:
                time.sleep(0.1)
        auth = {"Authorization": "Bearer run-test-key", "Content-Type": "application/json"}
        body = json.dumps({"input": {"prompt": "a big yellow star next to a small green triangle"}}).encode()
        request = urllib.request.Request(f"{base}/api/ai/jobs", data=body, headers=auth, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 202
            job = json.loads(response.read())
        stages = set()
        for _ in range(200):
            status = _get(f"{base}/api/ai/jobs/{job['id']}/status", auth)
            stages.add(status["progress"]["stage"])
            if status["status"] == "succeeded":
                break
            time.sleep(0.02)
        assert status["status"] == "succeeded"
        assert {"parse", "plan", "layout", "validate"} & stages  # the stages are visible while polling
        with urllib.request.urlopen(f"{base}/", timeout=5) as page:
            assert b"<html" in page.read().lower()
        with urllib.request.urlopen(f"{base}/api/docs", timeout=5) as docs:
            assert b"swagger" in docs.read().lower()
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert "Development API key" in output
