"""A real Prometheus (Debian's package, tests/ensure-prometheus.sh) scrapes the real service under
gunicorn with two worker processes, and sees the poll failure-rate alert of deploy/prometheus/alerts.yml
go pending when polls fail."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import free_port
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import IN_CI, make_key

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def _call(url, *, method="GET", headers=None, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _wait_until_up(url: str, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{what} exited with {process.returncode}"
        try:
            if _call(url, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} did not answer {url} within 30 s")


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        message = "prometheus is not installed (bash tests/ensure-prometheus.sh)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture
def service(app, config, tmp_path):
    """gunicorn with two workers; polls are limited to 5 a minute per key, so the rest answer 429."""
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    env = dict(os.environ, DATABASE_URL=config.database_url, REDIS_URL=config.redis_url,
               BIND=f"127.0.0.1:{port}", WEB_WORKERS="2", WEB_THREADS="8", RATE_LIMIT_POLL="5/minute",
               PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:backend.gunicorn_conf", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{base}/health/live", server, "gunicorn")
        yield base, {"Authorization": f"Bearer {make_key(app, 'prometheus-test')}"}
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def prometheus(prometheus_binary, service, tmp_path):
    base, _ = service
    port = free_port()
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{json.dumps(str(ALERTS))}]\n"
        "scrape_configs:\n"
        "  - job_name: ai-jobs-web\n"
        f"    static_configs: [{{targets: [{json.dumps(base.removeprefix('http://'))}]}}]\n"
    )
    process = subprocess.Popen(
        [prometheus_binary, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/-/ready", process, "prometheus")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _samples(base: str) -> dict[tuple, float]:
    status, body = _call(f"{base}/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_metrics_sum_every_gunicorn_worker_process(service):
    base, _ = service
    key = ("http_requests_total", (("method", "GET"), ("route", "/health/live"), ("status_class", "2xx")))
    before = _samples(base).get(key, 0.0)
    for _ in range(40):
        assert _call(f"{base}/health/live")[0] == 200

    assert _samples(base)[key] - before == 40


def _alert_states(prometheus_url: str, name: str) -> set[str]:
    status, body = _call(f"{prometheus_url}/api/v1/alerts")
    assert status == 200
    return {alert["state"] for alert in json.loads(body)["data"]["alerts"] if alert["labels"]["alertname"] == name}


def test_failing_polls_make_the_failure_rate_alert_go_pending(service, prometheus):
    base, auth = service
    status, body = _call(f"{base}/api/ai/jobs", method="POST", body={"agent": "echo", "input": {}},
                         headers={**auth, "Content-Type": "application/json"})
    assert status == 202, body
    job_url = f"{base}/api/ai/jobs/{json.loads(body)['id']}/status"
    assert _alert_states(prometheus, "PollFailureRateHigh") == set()

    outcomes = []
    deadline = time.monotonic() + 60
    states: set[str] = set()
    while time.monotonic() < deadline:
        for _ in range(10):
            outcomes.append(_call(job_url, headers=auth)[0])
        states = _alert_states(prometheus, "PollFailureRateHigh")
        if states:
            break
        time.sleep(0.5)

    assert outcomes.count(429) > 0.05 * len(outcomes), "the polls were turned away"
    # Pending, not firing: the rule asks for 5 minutes of it before it fires.
    assert states == {"pending"}
    # Every poll, whichever gunicorn worker answered it, reaches Prometheus (within a few scrapes).
    deadline = time.monotonic() + 15
    while True:
        status, body = _call(f"{prometheus}/api/v1/query?query=sum(job_polls_total)")
        result = json.loads(body)["data"]["result"]
        scraped = float(result[0]["value"][1]) if result else 0.0
        if scraped == len(outcomes) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert scraped == len(outcomes)
