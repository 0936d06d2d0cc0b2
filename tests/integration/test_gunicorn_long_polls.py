"""The production server configuration lets many long polls coexist with ordinary requests."""
from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, http_call

from tests.conftest import make_key

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PARKED_POLLS = 60


def _call(url, *, timeout=40, **request):
    return http_call(url, timeout=timeout, **request)


@pytest.fixture
def gunicorn(app, config):
    port = free_port()
    env = dict(os.environ, DATABASE_URL=config.database_url, REDIS_URL=config.redis_url,
               PORT=str(port), BIND=f"127.0.0.1:{port}", WEB_WORKERS="2", WEB_THREADS="64",
               # One key parks them all here; the per-key cap has its own tests (test_long_poll_cap.py).
               LONG_POLLS_PER_KEY=str(PARKED_POLLS))
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:backend.gunicorn_conf", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if _call(f"{base}/health/live", timeout=1)[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    yield base
    server.terminate()
    server.wait(timeout=30)


def _parked_long_polls(base: str) -> float:
    """The server's own count of parked long polls, summed over its processes (/metrics)."""
    text = _call(f"{base}/metrics", timeout=5)[2].decode()
    values = [line.split()[-1] for line in text.splitlines() if line.startswith("job_long_polls_parked ")]
    return float(values[0]) if values else 0.0


def _wait_until_parked(base: str, count: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while (parked := _parked_long_polls(base)) < count:
        assert time.monotonic() < deadline, f"only {parked:.0f} of {count} long polls parked"
        time.sleep(0.1)


def test_sixty_parked_long_polls_leave_ordinary_requests_fast_and_wake_on_change(app, gunicorn):
    auth = {"Authorization": f"Bearer {make_key(app, 'alice')}", "Content-Type": "application/json"}
    status, _, body = _call(f"{gunicorn}/api/ai/jobs", method="POST", headers=auth,
                            body={"agent": "echo", "input": {}})
    assert status == 202
    job_id = json.loads(body)["id"]
    _, headers, _ = _call(f"{gunicorn}/api/ai/jobs/{job_id}/status", headers=auth)
    tag = headers["ETag"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=PARKED_POLLS) as pool:
        parked = [
            pool.submit(_call, f"{gunicorn}/api/ai/jobs/{job_id}/status?wait=20",
                        headers={**auth, "If-None-Match": tag})
            for _ in range(PARKED_POLLS)
        ]
        _wait_until_parked(gunicorn, PARKED_POLLS)
        assert not any(f.done() for f in parked)

        ordinary_ms = []
        for _ in range(10):
            started = time.perf_counter()
            assert _call(f"{gunicorn}/api/ai/jobs?limit=5", headers=auth, timeout=5)[0] == 200
            ordinary_ms.append((time.perf_counter() - started) * 1000)

        woke_at = time.monotonic()
        assert _call(f"{gunicorn}/api/ai/jobs/{job_id}/cancel", method="POST", headers=auth)[0] == 202
        answers = [f.result(timeout=30) for f in parked]
        wake_s = time.monotonic() - woke_at

    print(f"\n{PARKED_POLLS} parked long polls; ordinary request max {max(ordinary_ms):.0f} ms; "
          f"all woke within {wake_s:.2f} s of the change")
    assert [a[0] for a in answers] == [200] * PARKED_POLLS
    assert all(json.loads(a[2])["status"] == "cancelled" for a in answers)
    assert wake_s < 10  # woken by the change, not by the 20 s wait
