"""Two API nodes (two gunicorn servers on different ports, standing for two machines behind a load
balancer) and three worker processes, on one PostgreSQL, one Redis and one broker: nothing a client
sees depends on which node answers."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import free_port

from tests.conftest import make_key

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SUBMITS_PER_MINUTE = 4


def _call(url, *, method="GET", headers=None, body=None, timeout=40):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def cluster_env(postgres_url, redis_url):
    return dict(os.environ, DATABASE_URL=postgres_url, REDIS_URL=redis_url,
                RATE_LIMIT_SUBMIT=f"{SUBMITS_PER_MINUTE}/minute", LOG_FORMAT="text")


@pytest.fixture(scope="module")
def nodes(cluster_env):
    """Two gunicorn nodes and three `dramatiq backend.worker` processes, started once for these
    tests (each test's `app` empties the database and Redis under them); yields the nodes' URLs."""
    processes, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            env = dict(cluster_env, BIND=f"127.0.0.1:{port}", WEB_WORKERS="1", WEB_THREADS="16")
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "python:backend.gunicorn_conf", "wsgi:app"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            ))
            urls.append(f"http://127.0.0.1:{port}")
        for _ in range(3):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "dramatiq", "backend.worker", "-p", "1", "-t", "2",
                 "--worker-shutdown-timeout", "5000"],
                cwd=ROOT, env=cluster_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            ))
        for url in urls:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if _call(f"{url}/health/live", timeout=1)[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"{url} did not come up"
                time.sleep(0.1)
        yield urls
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=30)


def test_a_long_poll_parked_on_one_node_wakes_for_a_job_submitted_through_the_other(app, nodes):
    node_a, node_b = nodes
    auth = {"Authorization": f"Bearer {make_key(app, 'alice')}", "Content-Type": "application/json"}
    # Long enough that node A's poll is surely parked before a worker picks the job up.
    status, _, job = _call(f"{node_b}/api/ai/jobs", method="POST", headers=auth,
                           body={"agent": "echo", "input": {"steps": 1, "delay_ms": 3000}})
    assert status == 202
    _, headers, before = _call(f"{node_a}/api/ai/jobs/{job['id']}/status", headers=auth)
    answers = []
    parked = threading.Thread(target=lambda: answers.append(_call(
        f"{node_a}/api/ai/jobs/{job['id']}/status?wait=25", headers={**auth, "If-None-Match": headers["ETag"]})))

    started = time.monotonic()
    parked.start()
    parked.join(timeout=40)
    waited_s = time.monotonic() - started

    status, _, after = answers[0]
    assert status == 200
    assert after["version"] > before["version"]  # a worker's change, announced through Redis
    assert waited_s < 20, f"node A answered after {waited_s:.1f} s: the wait ran out, no wake-up came"


def test_a_key_revoked_through_one_node_is_refused_by_the_other_at_once(app, nodes, cluster_env):
    node_a, node_b = nodes
    key = make_key(app, "bob")
    auth = {"Authorization": f"Bearer {key}"}
    assert _call(f"{node_b}/api/ai/jobs", headers=auth)[0] == 200
    key_id = key.split("_")[1]

    # An operator on node A's machine, with node A's configuration.
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "keys", "revoke", key_id],
                   cwd=ROOT, env=cluster_env, check=True, capture_output=True, timeout=60)
    status, _, problem = _call(f"{node_b}/api/ai/jobs", headers=auth)

    assert status == 401
    assert problem["code"] == "invalid_api_key"


def test_rate_limits_are_one_budget_across_the_nodes(app, nodes):
    node_a, node_b = nodes
    auth = {"Authorization": f"Bearer {make_key(app, 'carol')}", "Content-Type": "application/json"}

    def submit(node):
        return _call(f"{node}/api/ai/jobs", method="POST", headers=auth, body={"agent": "echo", "input": {}})

    # Alternate: each node alone would allow SUBMITS_PER_MINUTE, together they allow it once. The
    # submit budget is counted write-behind (ADR 0003): a node refuses on the other's submits as of
    # its own last flush, so each node may let through the one submit it had not heard of yet.
    answers = [submit(node) for node in (node_a, node_b) * SUBMITS_PER_MINUTE]
    statuses = [status for status, _, _ in answers]

    assert statuses[:SUBMITS_PER_MINUTE] == [202] * SUBMITS_PER_MINUTE
    assert SUBMITS_PER_MINUTE <= statuses.count(202) <= SUBMITS_PER_MINUTE + 2  # not 2 x the budget
    assert statuses[-2:] == [429, 429]
    assert answers[-1][2]["code"] == "rate_limited"
