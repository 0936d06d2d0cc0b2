"""Key checks are cached per web process; a revocation still takes effect at once on every process."""
from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port

from tests.conftest import make_key

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# Long enough that only the revocation message, never the cache's own expiry, can explain a 401.
CACHE_TTL_S = 600


def _statuses(port: int, key: str, n: int) -> list[int]:
    """``n`` requests, each on a new connection, so gunicorn hands them to either worker process."""
    answers = []
    for _ in range(n):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/api/ai/jobs?limit=1", headers={"Authorization": f"Bearer {key}"})
        answers.append(connection.getresponse().status)
        connection.close()
    return answers


@pytest.fixture
def two_web_processes(app, config):
    port = free_port()
    env = dict(os.environ, DATABASE_URL=config.database_url, REDIS_URL=config.redis_url,
               BIND=f"127.0.0.1:{port}", WEB_WORKERS="2", WEB_THREADS="4", KEY_CACHE_TTL_S=str(CACHE_TTL_S))
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:backend.gunicorn_conf", "wsgi:app"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/health/live")
            if connection.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.1)
    yield port
    server.terminate()
    server.wait(timeout=30)


def test_a_revoked_key_is_refused_at_once_by_every_web_process_that_cached_it(app, two_web_processes):
    from backend import keys

    key = make_key(app, "alice")
    # Enough requests that both worker processes have answered (and cached) the key.
    assert _statuses(two_web_processes, key, 40) == [200] * 40

    with app.app_context():
        key_id = key.split("_")[1]
        assert keys.revoke_key(key_id)
    time.sleep(0.5)  # the revocation's message crossing Redis, far below the cache's 600 s

    assert _statuses(two_web_processes, key, 40) == [401] * 40
